"""The channel contract: every way in (REST, AG-UI, action links, the deadline pass)
answers and cancels through these functions and nothing else.

``answer`` takes one answer once it passes the checks of broker/core/admission.py
(visibility, comment, scopes, assignment, the answer's contracts); then the resolve
transition accepts it if the interrupt is still pending and before its deadline, and
(when assigned) still assigned to the principal; the run's job is queued after. Every
attempt past the first step lands in the interrupt's audit log: the accepted one inside
the transition. An interrupt decided by several people (a quorum or a chain) takes each
answer as a vote instead (broker/core/votes.py).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from arq.connections import ArqRedis

from broker.core import admission, audit, auth, errors, jobs, receipts, schemas, undo, votes
from broker.core.codec import dumps, iso, loads, now_ms
from broker.core.ids import is_id
from broker.core.jobs import abort_job, enqueue_advance
from broker.core.metrics import ACCEPTED, REPLAYED, count, refusals
from broker.core.records import Channel, InterruptRecord, InterruptStatus, RunStatus
from broker.core.store import Store
from broker.core.telemetry import bind, resolving, waited

log = logging.getLogger("broker.channel")


@dataclass(frozen=True)
class SingleUse:
    """A credential good for one answer (an action link's nonce), until ``ttl_ms``."""

    nonce: str
    ttl_ms: int


def _who(principal: auth.Principal | None) -> auth.Principal:
    return principal or auth.current() or auth.SYSTEM


@refusals
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
    comment: str | None = None,
    if_match: list[str] | None = None,
) -> dict[str, Any]:
    """Accepts the first valid answer to a pending interrupt and queues its run; returns
    the resolved interrupt. A retry with the same idempotency key gets the same body.
    ``comment``, the person's note on the answer, is kept with the resolution; on a
    tool review it is the reason of a reject that gives none. ``if_match``: the
    fingerprints of the question the answer was given to (``fingerprint.tags``; None:
    any), one of which it must still have as the answer is accepted."""
    who = _who(principal)
    h, value, comment = await admission.checked(
        store, interrupt_id, value, resolved_by, channel, who, comment, if_match=if_match
    )
    bind(run_id=h.run_id, thread_id=h.thread_id, agent_id=h.agent_id, interrupt_id=h.id)
    with resolving(h, channel):
        # the run's job is queued by the resolve itself: an accepted answer is never left
        # without one (the reconciler stays the net for a job lost after it)
        job = jobs.advance(queue, store, h.run_id, interrupt_id, (h.thread_id, h.agent_id))
        bound = h.fingerprint if if_match is not None else None
        if h.rule is not None:
            return await votes.cast(
                store, h, value, who, channel, resolved_by, comment, job, bound, _resolution
            )
        args = (idempotency_key, who, single_use, job, comment, bound)
        return await _resolve(store, h, value, resolved_by, channel, *args)


@refusals
async def answer_many(
    store: Store,
    queue: ArqRedis,
    answers: list[tuple[InterruptRecord, Any]],
    *,
    channel: Channel,
    principal: auth.Principal | None = None,
    resolved_by: str | None = None,
    if_match: dict[str, list[str]] | None = None,
) -> int:
    """Answers several interrupts of one run (AG-UI ``resume[]``): every answer is checked
    before any is recorded, so a bad one changes nothing; the run is queued once.
    ``if_match``: by interrupt id, the fingerprints its answer is bound to (as
    ``answer``). Returns how many were accepted."""
    who = _who(principal)
    bound = if_match or {}
    for h, value in answers:
        await admission.checked(
            store, h.id, value, resolved_by, channel, who, None, h, if_match=bound.get(h.id)
        )
    with resolving(answers[0][0] if answers else None, channel):
        accepted = now = 0
        try:
            for h, value in answers:
                fp = h.fingerprint if h.id in bound else None
                if h.rule is not None:
                    await votes.cast(
                        store, h, value, who, channel, resolved_by, None, None, fp, _resolution
                    )
                    now += 1
                elif h.undo_ms:
                    # held: its own job, queued by the resolve for the window's close (and
                    # removed by a withdrawal), as a single answer's is
                    where = (h.thread_id, h.agent_id)
                    job = jobs.advance(queue, store, h.run_id, h.id, where)
                    await _resolve(
                        store, h, value, resolved_by, channel, None, who, None, job, None, fp
                    )
                else:
                    await _resolve(
                        store, h, value, resolved_by, channel, None, who, None, fingerprint=fp
                    )
                    now += 1
                accepted += 1
        finally:
            if now:
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
    count(channel, outcome)
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
        person=admission.person(who),
    )
    await store.append_audit(interrupt_id, item)


async def expire(
    store: Store, queue: ArqRedis, interrupt_id: str, now: int, h: InterruptRecord | None = None
) -> bool:
    """The deadline pass: expires one due interrupt with its declared outcome; True when
    this call expired it. A default answer is checked like any other, and queues the
    run; an invalid default, or none, fails (or cancels) the run in the same step.
    ``h``: the interrupt as the caller just read it."""
    try:
        h = h or await store.interrupt(interrupt_id)
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
            resolution = _resolution(
                store, h, h.expiry_default, "expiry", Channel.EXPIRY, None, now, comment=None
            )
            outcome = audit.ACCEPTED
    end = {"fail": RunStatus.FAILED, "cancel": RunStatus.CANCELLED}.get(on_expire)
    event = dict(interrupt_id=interrupt_id, type=h.type, on_expire=on_expire, resolution=resolution)
    entry = audit.entry(
        actor="expiry",
        key_id=None,
        channel=Channel.EXPIRY,
        outcome=outcome,
        payload_digest=audit.payload_sha256(resolution["value"]) if resolution else None,
        at_ms=now,
    )
    failed = end == RunStatus.FAILED
    error = {"message": f"interrupt {interrupt_id} expired without an answer"} if failed else None
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
        count(Channel.EXPIRY, ACCEPTED)  # the default answer
        await enqueue_advance(queue, store, run_id, f"expiry:{interrupt_id}")
    else:
        await abort_job(queue, store, job_id)  # a worker executing the run stops it
    return True


def _resolution(
    store: Store,
    h: InterruptRecord,
    value: Any,
    resolved_by: str | None,
    channel: Channel,
    who: auth.Principal | None,
    ts: int,
    *,
    comment: str | None,
    votes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The resolution to record, with its signed receipt (null when receipts are off);
    ``votes``, those that decided it, when its interrupt is decided by votes."""
    resolution: dict[str, Any] = {
        "value": value,
        "resolved_by": resolved_by,
        "resolved_at": iso(ts),
        "channel": channel.value,
        "key_id": who.key_id if who else None,
        "person": admission.person(who),
        "comment": comment,
        "receipt": None,
    }
    if votes is not None:
        resolution["votes"] = votes
    keys = store.receipts
    if keys.signer is not None:
        resolution["receipt"] = keys.sign(receipts.claims(h, resolution, ts, keys.issuer))
    return resolution


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
    comment: str | None = None,
    fingerprint: str | None = None,
) -> dict[str, Any]:
    ts = now_ms()
    resolution = _resolution(store, h, value, resolved_by, channel, who, ts, comment=comment)
    response = {
        **h.view(),
        "status": InterruptStatus.RESOLVED.value,
        "resolution": resolution,
        "updated_at": iso(ts),
    }
    hold = None
    if h.undo_ms:
        # held in its undo window: accepted now, the run resumes when the window closes
        held_until = ts + h.undo_ms
        response["status"] = InterruptStatus.ACCEPTED.value
        response["undo"] = {"undo_s": h.undo_ms / 1000, "held_until": iso(held_until)}
        hold = (held_until, undo.author(who), undo.accepted_event(h, resolution, held_until))
    idempotency = None
    if idempotency_key:
        # the comment joins the digest only when given: digests stored before comments
        # existed stay valid
        answered = [value, resolved_by, *([comment] if comment is not None else [])]
        idempotency = (
            hashlib.sha256(idempotency_key.encode()).hexdigest()[:32],
            hashlib.sha256(dumps(answered).encode()).hexdigest(),
        )
    attempt = audit.entry(
        actor=resolved_by or who.actor,
        key_id=who.key_id,
        channel=channel,
        outcome=audit.ACCEPTED,
        payload_digest=audit.payload_sha256(value),
        at_ms=ts,
        person=admission.person(who),
        comment=comment,
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
            answerer=admission.answerer(who, channel),
            fingerprint=fingerprint,
            hold=hold,
        )
        if res[0] == "ok":
            waited(h)
        if res[0] == "idempotent" and loads(res[1])["digest"] == (idempotency or ("", ""))[1]:
            replay = {**attempt, "at": iso(now_ms()), "outcome": "replayed"}
            await store.append_audit(h.id, replay)
        view = admission.outcome(h.id, res, idempotency[1] if idempotency else "", response)
        count(channel, REPLAYED if res[0] == "idempotent" else ACCEPTED)
        return view
    except errors.BrokerError as exc:
        await admission.audit_refusal(
            store, h.id, value, resolved_by, channel, who, exc.code, comment
        )
        raise
