"""The audit log: every attempt to answer an interrupt, accepted or refused.

One capped Redis list per interrupt. An accepted answer's entry is written by the
resolve (or expiry) script in the same step as the resolution; a refusal's entry is
written when the refusal is decided (``Store.append_audit``). The log expires with its
interrupt. Entries hold a hash of the payload, not the payload.
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
) -> dict[str, Any]:
    return {
        "at": iso(at_ms or now_ms()),
        "actor": actor,
        "key_id": key_id,
        "channel": channel,
        "outcome": outcome,
        "payload_sha256": payload_digest,
    }


async def read(r: aioredis.Redis, keys: Keys, interrupt_id: str) -> list[dict[str, Any]]:
    """The interrupt's audit entries, oldest first."""
    return [loads(raw) for raw in await r.lrange(keys.audit(interrupt_id), 0, -1)]
