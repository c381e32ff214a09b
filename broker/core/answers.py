"""Answering an interrupt: the one path every channel takes (REST, AG-UI, links).

In order: the interrupt must exist and be visible to the principal (404 otherwise, so
a key limited to other agents learns nothing), the principal must hold the resolve
scope (403), the answer must meet the interrupt's contracts (422), and then the
RESOLVE script accepts it if the interrupt is still pending and before its deadline.
Every attempt past the first step lands in the interrupt's audit log: the accepted one
inside the script, in the same step as the resolution.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from broker.core import audit, auth, errors, schemas
from broker.core.codec import dumps, iso, loads, now_ms
from broker.core.records import interrupt_view

if TYPE_CHECKING:
    from broker.core.store import Store


@dataclass(frozen=True)
class SingleUse:
    """A credential good for one answer (an action link's nonce), until ``ttl_ms``."""

    nonce: str
    ttl_ms: int


async def resolve(
    store: Store,
    interrupt_id: str,
    value: Any,
    *,
    resolved_by: str | None,
    channel: str,
    idempotency_key: str | None = None,
    principal: auth.Principal | None = None,
    single_use: SingleUse | None = None,
) -> dict[str, Any]:
    """Accepts the first valid answer to a pending interrupt; see the module docstring."""
    who = principal or auth.current() or auth.SYSTEM
    h = await store.interrupt_hash(interrupt_id)
    attempt = audit.entry(
        actor=resolved_by or who.actor,
        key_id=who.key_id,
        channel=channel,
        outcome=audit.ACCEPTED,
        payload_digest=audit.payload_sha256(value),
    )
    try:
        if not who.sees(h["agent_id"]):
            raise errors.InterruptNotFound(f"no interrupt with id {interrupt_id!r}")
        if not who.allows(auth.RESOLVE):
            raise errors.Forbidden(
                f"the API key {who.actor!r} lacks the {auth.RESOLVE!r} scope", scope=auth.RESOLVE
            )
        schemas.check_answer(loads(h.get("value")), loads(h.get("response_schema")), value)
        return await _accept(
            store, h, value, resolved_by, channel, idempotency_key, who, single_use, attempt
        )
    except errors.BrokerError as exc:
        await audit.record(
            store.r,
            store.keys,
            interrupt_id,
            {**attempt, "outcome": exc.code},
            store.settings.audit_max,
        )
        raise


async def refuse(
    store: Store,
    interrupt_id: str,
    outcome: str,
    *,
    channel: str,
    principal: auth.Principal | None = None,
    payload_digest: str | None = None,
) -> None:
    """Audits an attempt refused before it reached ``resolve`` (an unreadable body, an
    expired link); ``outcome`` is the error code the caller got."""
    who = principal or auth.current() or auth.SYSTEM
    if not await store.r.exists(store.keys.interrupt(interrupt_id)):
        return  # nothing to attach it to, and no key is made for an id nobody owns
    item = audit.entry(
        actor=who.actor,
        key_id=who.key_id,
        channel=channel,
        outcome=outcome,
        payload_digest=payload_digest,
    )
    await audit.record(store.r, store.keys, interrupt_id, item, store.settings.audit_max)


async def _accept(
    store: Store,
    h: dict[str, str],
    value: Any,
    resolved_by: str | None,
    channel: str,
    idempotency_key: str | None,
    who: auth.Principal,
    single_use: SingleUse | None,
    attempt: dict[str, Any],
) -> dict[str, Any]:
    interrupt_id = h["id"]
    k = store.keys
    s = store.settings
    ts = now_ms()
    resolution = {
        "value": value,
        "resolved_by": resolved_by,
        "resolved_at": iso(ts),
        "channel": channel,
        "key_id": who.key_id,
    }
    resolved = {**h, "status": "resolved", "resolution": dumps(resolution), "updated_ms": str(ts)}
    response = interrupt_view(resolved)
    payload_digest = ""
    idem_key = k.idempotency(interrupt_id, "_")
    if idempotency_key:
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
        idem_key = k.idempotency(interrupt_id, digest)
        payload_digest = hashlib.sha256(dumps([value, resolved_by]).encode()).hexdigest()
    run = {"id": h["run_id"], "thread_id": h["thread_id"], "agent_id": h["agent_id"]}
    event = store.event(
        "interrupt.resolved",
        run,
        interrupt_id=interrupt_id,
        type=h.get("type") or None,
        resolution=resolution,
    )
    res = await store._resolve(
        keys=[
            k.interrupt(interrupt_id),
            *store.interrupt_indexes("pending", h),
            *store.interrupt_indexes("resolved", h),
            k.interrupts_version,
            k.runs_due,
            k.events,
            k.run_events(h["run_id"]),
            idem_key,
            k.run(h["run_id"]),
            k.seq,
            k.audit(interrupt_id),
            k.link_used(single_use.nonce if single_use else "_"),
            k.deadlines,
        ],
        args=[
            dumps(resolution),
            ts,
            h["run_id"],
            event,
            dumps({"digest": payload_digest, "body": response}),
            payload_digest,
            s.idempotency_ttl_s * 1000,
            "",
            s.events_maxlen_global,
            s.events_maxlen_run,
            interrupt_id,
            dumps({**attempt, "at": iso(ts)}),
            s.audit_max,
            single_use.nonce if single_use else "",
            max(single_use.ttl_ms, 1000) if single_use else 0,
        ],
    )
    if res[0] == "idempotent" and loads(res[1])["digest"] == payload_digest:
        replay = {**attempt, "at": iso(now_ms()), "outcome": "replayed"}
        await audit.record(store.r, k, interrupt_id, replay, s.audit_max)
    return _outcome(interrupt_id, res, payload_digest, response)


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
