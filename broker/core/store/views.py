"""A page's interrupts as public JSON, built straight from their hashes (no record in
between: a page builds fifty of these)."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from broker.core.codec import loads
from broker.core.records import InterruptStatus, escalation_view, undo_view, voting
from broker.core.shapes import kind


@functools.lru_cache(maxsize=4096)
def _second(s: int) -> str:
    return datetime.fromtimestamp(s, tz=UTC).isoformat()[:19]


def _iso(ms: int) -> str:
    """``codec.iso`` for a page: the same text, its second formatted once."""
    s, frac = divmod(ms, 1000)
    return f"{_second(s)}.{frac:03d}000Z" if frac else f"{_second(s)}Z"


def interrupt_view(h: dict[str, str]) -> dict[str, Any]:
    """``InterruptRecord.from_hash(h).view()`` straight from the hash: a page builds
    fifty of these, and this skips the record in between (tests/test_reads.py holds the
    two equal)."""
    value = loads(h.get("value"))
    on_expire = h.get("on_expire") or None
    expires = h.get("expires_at_ms")
    return {
        "id": h["id"],
        "interrupt_id": h["lg_id"],
        "run_id": h["run_id"],
        "thread_id": h["thread_id"],
        "agent_id": h["agent_id"],
        "type": h.get("type") or None,
        "kind": kind(value),
        "value": value,
        "response_schema": loads(h.get("response_schema")),
        "status": InterruptStatus(h["status"]).value,
        "created_at": _iso(int(h.get("created_ms") or 0)),
        "expires_at": _iso(int(expires)) if expires else None,
        "expiry": {"on_expire": on_expire, "default": loads(h.get("expiry_default"))}
        if on_expire
        else None,
        "updated_at": _iso(int(h.get("updated_ms") or 0)),
        "resolution": loads(h.get("resolution")),
        "assignees": loads(h.get("assignees")) or [],
        "watchers": loads(h.get("watchers")) or [],
        "fingerprint": h.get("fingerprint", ""),
        "approval": voting(loads(h.get("rule")), loads(h.get("votes")) or [], h["status"]),
        "escalation": escalation_view(
            loads(h.get("escalation")), int(h.get("escalation_next") or 0)
        ),
        "undo": undo_view(int(h.get("undo_ms") or 0), h.get("held_until_ms")),
    }
