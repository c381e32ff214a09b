"""The channel contract: every way in (REST, AG-UI, action links, the deadline pass)
answers and cancels through these functions and nothing else.

``answer`` takes one answer in this order: the interrupt must exist and be visible to
the principal (404 otherwise, so a key limited to other agents learns nothing), the
principal must hold the resolve scope (403), the answer must meet the interrupt's
contracts (422), and then the resolve transition accepts it if the interrupt is still
pending and before its deadline; the run's job is queued after. Every attempt past the
first step lands in the interrupt's audit log: the accepted one inside the transition.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from arq.connections import ArqRedis

from broker.core import audit, auth, errors, jobs, schemas
from broker.core.codec import dumps, iso, loads, now_ms
from broker.core.ids import is_id
from broker.core.jobs import abort_job, enqueue_advance
from broker.core.records import Channel, InterruptRecord, InterruptStatus, RunStatus
from broker.core.store import Store

log = logging.getLogger("broker.channel")


@dataclass(frozen=True)
class SingleUse:
    """A credential good for one answer (an action link's nonce), until ``ttl_ms``."""

    nonce: str
    ttl_ms: int


def _who(principal: auth.Principal | None) -> auth.Principal:
    return principal or auth.current() or auth.SYSTEM


async def answer(
    store: Store,
    queue: ArqRedis,
    interrupt_id: str,
    value: Any,
    *,
    channel: Channel,
    principal: auth.Principal | None = None,
    resolved_by: str | None = None,
    idempotency_key: str | None = None,
    single_use: SingleUse | None = None,
) -> dict[str, Any]:
    """Accepts the first valid answer to a pending interrupt and queues its run; returns
    the resolved interrupt. A retry with the same idempotency key gets the same body."""
    who = _who(principal)
    h = await _checked(store, interrupt_id, value, resolved_by, channel, who)
    # the run's job is queued by the resolve itself: an accepted answer is never left
    # without one (the reconciler stays the net for a job lost after it)
    job = jobs.advance(queue, store, h.run_id, interrupt_id, (h.thread_id, h.agent_id))
    return await _resolve(
        store, h, value, resolved_by, channel, idempotency_key, who, single_use, job
    )


async def answer_many(
    store: Store,
    queue: ArqRedis,
    answers: list[tuple[InterruptRecord, Any]],
    *,
    channel: Channel,
    principal: auth.Principal | None = None,
    resolved_by: str | None = None,
) -> int:
    """Answers several interrupts of one run (AG-UI ``resume[]``): every answer is checked
    before any is recorded, so a bad one changes nothing; the run is queued once.
    Returns how many were accepted."""
    who = _who(principal)
    for h, value in answers:
        await _checked(store, h.id, value, resolved_by, channel, who, h)
    accepted = 0
    try:
        for h, value in answers:
            await _resolve(store, h, value, resolved_by, channel, None, who, None)
            accepted += 1
    finally:
        if accepted:
            # named for an interrupt of the batch: a later batch on the run is a new job
            first = answers[0][0]
            where = (first.thread_id, first.agent_id)
            await enqueue_advance(queue, store, first.run_id, f"{channel}:{first.id}", where)
    return accepted


async def cancel(store: Store, queue: ArqRedis, run_id: str, saver: Any = None) -> dict[str, Any]:
    """Cancels an unfinished run, closes its pending interrupts, and stops the attempt
    executing it; returns the run. With the checkpoint ``saver``, the thread's
    checkpoints get the retention of a finished thread, as a worker gives them."""
    job_id = await store.stop_run(run_id, RunStatus.CANCELLED)
    await abort_job(queue, store, job_id)
    run = await store.get_run(run_id)
    ttl = store.settings.checkpoint_ttl_s
    if saver is not None and ttl:
        await saver.aexpire_thread(run["thread_id"], ttl)
    return run


async def refuse(
    store: Store,
    interrupt_id: str,
    outcome: str,
    *,
    channel: Channel,
    principal: auth.Principal | None = None,
    payload_digest: str | None = None,
) -> None:
    """Audits an attempt refused before it reached ``answer`` (an unreadable body, an
    expired link); ``outcome`` is the error code the caller got."""
    who = _who(principal)
    if not is_id(interrupt_id):
        return  # names no interrupt
    agent_id = await store.r.hget(store.keys.interrupt(interrupt_id), "agent_id")
    if agent_id is None or not who.sees(agent_id):
        # nothing to attach it to, or a key that may not see it: no entry is made, so
        # unknown ids make no keys and other agents' keys cannot flood the log
        return
    item = audit.entry(
        actor=who.actor,
        key_id=who.key_id,
        channel=channel,
        outcome=outcome,
        payload_digest=payload_digest,
    )
    await store.append_audit(interrupt_id, item)


async def expire(store: Store, queue: ArqRedis, interrupt_id: str, now: int) -> bool:
    """The deadline pass: expires one due interrupt with its declared outcome; True when
    this call expired it. A default answer is checked like any other, and queues the
    run; an invalid default, or none, fails (or cancels) the run in the same step."""
    try:
        h = await store.interrupt(interrupt_id)
    except errors.InterruptNotFound:
        await store.drop_deadline(interrupt_id)
        return False
    on_expire = h.on_expire or "fail"
    resolution: dict[str, Any] | None = None
    outcome = "expired"
    if on_expire == "resume":
        try:
            schemas.check_answer(h.value, h.response_schema, h.expiry_default)
        except errors.InvalidAnswer as exc:
            # never hand the graph an answer that breaks its own contract
            log.error("interrupt %s: default answer is invalid (%s); failing", interrupt_id, exc)
            on_expire, outcome = "fail", exc.code
        else:
            resolution = _resolution(h.expiry_default, "expiry", Channel.EXPIRY, None, now)
            outcome = audit.ACCEPTED
    end = {"fail": RunStatus.FAILED, "cancel": RunStatus.CANCELLED}.get(on_expire)
    event = {
        "interrupt_id": interrupt_id,
        "type": h.type,
        "on_expire": on_expire,
        "resolution": resolution,
    }
    entry = audit.entry(
        actor="expiry",
        key_id=None,
        channel=Channel.EXPIRY,
        outcome=outcome,
        payload_digest=audit.payload_sha256(resolution["value"]) if resolution else None,
        at_ms=now,
    )
    error = (
        {"message": f"interrupt {interrupt_id} expired without an answer"}
        if end == RunStatus.FAILED
        else None
    )
    result, run_id, job_id = await store.expire_script(
        interrupt_id,
        resolution=resolution,
        end_status=end,
        event=event,
        audit_entry=entry,
        error=error,
        now=now,
    )
    if result != "ok":
        return False
    log.info("interrupt %s expired: %s", interrupt_id, on_expire)
    if end is None:
        await enqueue_advance(queue, store, run_id, f"expiry:{interrupt_id}")
    else:
        await abort_job(queue, store, job_id)  # a worker executing the run stops it
    return True


def _resolution(
    value: Any, resolved_by: str | None, channel: Channel, key_id: str | None, ts: int
) -> dict[str, Any]:
    return {
        "value": value,
        "resolved_by": resolved_by,
        "resolved_at": iso(ts),
        "channel": channel.value,
        "key_id": key_id,
    }


async def _checked(
    store: Store,
    interrupt_id: str,
    value: Any,
    resolved_by: str | None,
    channel: Channel,
    who: auth.Principal,
    h: InterruptRecord | None = None,
) -> InterruptRecord:
    """The interrupt, once visibility, scope and the answer's contracts pass; a refusal
    of a visible interrupt is audited."""
    h = h or await store.interrupt(interrupt_id)
    if not who.sees(h.agent_id):
        raise errors.InterruptNotFound(f"no interrupt with id {interrupt_id!r}")
    try:
        if not who.allows(auth.RESOLVE):
            raise errors.Forbidden(
                f"the API key {who.actor!r} lacks the {auth.RESOLVE!r} scope", scope=auth.RESOLVE
            )
        schemas.check_answer(h.value, h.response_schema, value)
    except errors.BrokerError as exc:
        await _audit_refusal(store, h.id, value, resolved_by, channel, who, exc.code)
        raise
    return h


async def _audit_refusal(
    store: Store,
    interrupt_id: str,
    value: Any,
    resolved_by: str | None,
    channel: Channel,
    who: auth.Principal,
    outcome: str,
) -> None:
    item = audit.entry(
        actor=resolved_by or who.actor,
        key_id=who.key_id,
        channel=channel,
        outcome=outcome,
        payload_digest=audit.payload_sha256(value),
    )
    await store.append_audit(interrupt_id, item)


async def _resolve(
    store: Store,
    h: InterruptRecord,
    value: Any,
    resolved_by: str | None,
    channel: Channel,
    idempotency_key: str | None,
    who: auth.Principal,
    single_use: SingleUse | None,
    job: jobs.Job | None = None,
) -> dict[str, Any]:
    ts = now_ms()
    resolution = _resolution(value, resolved_by, channel, who.key_id, ts)
    response = {
        **h.view(),
        "status": InterruptStatus.RESOLVED.value,
        "resolution": resolution,
        "updated_at": iso(ts),
    }
    idempotency = None
    if idempotency_key:
        idempotency = (
            hashlib.sha256(idempotency_key.encode()).hexdigest()[:32],
            hashlib.sha256(dumps([value, resolved_by]).encode()).hexdigest(),
        )
    attempt = audit.entry(
        actor=resolved_by or who.actor,
        key_id=who.key_id,
        channel=channel,
        outcome=audit.ACCEPTED,
        payload_digest=audit.payload_sha256(value),
        at_ms=ts,
    )
    try:
        res = await store.resolve_script(
            h.id,
            resolution=resolution,
            event={"interrupt_id": h.id, "type": h.type, "resolution": resolution},
            response=response,
            idempotency=idempotency,
            audit_entry=attempt,
            single_use=(single_use.nonce, single_use.ttl_ms) if single_use else None,
            job=(job.keys, [job.job_id, job.payload, job.ttl_ms, job.wake]) if job else None,
        )
        if res[0] == "idempotent" and loads(res[1])["digest"] == (idempotency or ("", ""))[1]:
            replay = {**attempt, "at": iso(now_ms()), "outcome": "replayed"}
            await store.append_audit(h.id, replay)
        return _outcome(h.id, res, idempotency[1] if idempotency else "", response)
    except errors.BrokerError as exc:
        await _audit_refusal(store, h.id, value, resolved_by, channel, who, exc.code)
        raise


def _outcome(
    interrupt_id: str, res: list[Any], payload_digest: str, response: dict[str, Any]
) -> dict[str, Any]:
    outcome = res[0]
    if outcome == "ok":
        return response
    if outcome == "idempotent":
        stored = loads(res[1])
        if stored["digest"] != payload_digest:
            raise errors.IdempotencyKeyReused(
                "this Idempotency-Key was already used with a different answer; "
                "use a new key for a new answer"
            )
        body: dict[str, Any] = stored["body"]
        return body
    if outcome == "not_found":
        raise errors.InterruptNotFound(f"no interrupt with id {interrupt_id!r}")
    if outcome == "used":
        raise errors.LinkUsed("this link was already used; each link answers once")
    if outcome == "expired":
        raise errors.InterruptExpired(f"interrupt {interrupt_id} expired; it takes no answers")
    status, winner = res[1], loads(res[2])
    if status == "resolved":
        raise errors.AlreadyResolved(
            f"interrupt {interrupt_id} was already answered", resolution=winner
        )
    if status == "expired":
        raise errors.InterruptExpired(
            f"interrupt {interrupt_id} expired; it takes no answers", resolution=winner
        )
    raise errors.InterruptClosed(
        f"interrupt {interrupt_id} is {status}; its run no longer waits for it",
        status=status,
    )
