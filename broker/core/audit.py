"""The audit log: every attempt to answer an interrupt, accepted or refused.

One capped Redis list per interrupt (``BROKER_AUDIT_MAX`` newest entries). The entry of
the step that decides the interrupt (its accepted answer, or its deadline) is written by
the resolve (or expire) script in the same step as the resolution, and kept under a key
of its own too, so no number of refusals after it trims it away; a refusal's entry is
written when the refusal is decided (``Store.append_audit``). The log, and the deciding
entry, expire with the interrupt. Entries hold a hash of the payload, not the payload, and
the comment given with the answer, if any.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import redis.asyncio as aioredis

from broker.core.codec import iso, loads, now_ms
from broker.core.keys import Keys

ACCEPTED = "accepted"


def payload_sha256(value: Any) -> str:
    """SHA-256 of the answer as canonical JSON (sorted keys, no spaces)."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def entry(
    *,
    actor: str,
    key_id: str | None,
    channel: str,
    outcome: str,
    payload_digest: str | None,
    at_ms: int | None = None,
    person: dict[str, Any] | None = None,
    comment: str | None = None,
) -> dict[str, Any]:
    """One attempt: ``actor`` names who answered (the person, the name a key gave in
    ``resolved_by``, or the key), ``key_id`` the key, ``person`` the verified person
    (``auth.Person.record()``) when a person's token authenticated it, ``comment`` the
    note given with the answer (only entries that have one carry it)."""
    item = {
        "at": iso(at_ms or now_ms()),
        "actor": actor,
        "key_id": key_id,
        "person": person,
        "channel": channel,
        "outcome": outcome,
        "payload_sha256": payload_digest,
    }
    if comment is not None:
        item["comment"] = comment  # at most 2000 characters
    return item


async def read(r: aioredis.Redis, keys: Keys, interrupt_id: str) -> list[dict[str, Any]]:
    """The interrupt's audit entries, oldest first, always with the deciding one."""
    async with r.pipeline(transaction=True) as pipe:
        pipe.lrange(keys.audit(interrupt_id), 0, -1)
        pipe.get(keys.audit_decision(interrupt_id))
        logged, decision = await pipe.execute()
    if decision is not None and decision not in logged:
        # trimmed from the capped log: everything left there came after it
        logged.insert(0, decision)
    return [loads(raw) for raw in logged]
