"""How the transitions hand records to their Lua scripts, and read replies back."""

from __future__ import annotations

from typing import Any

from broker.core.codec import dumps
from broker.core.records import InterruptRecord


def pairs(flat: list[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def flat(fields: dict[str, str]) -> str:
    return dumps([x for kv in fields.items() for x in kv])


def candidate(p: InterruptRecord) -> dict[str, Any]:
    """An interrupt the graph stopped on, as record interrupts takes it. Its assignees
    and watchers travel (to its indexes and its ``interrupt.created`` event) only when
    it has some."""
    data: dict[str, Any] = {
        "interrupt_id": p.id,
        "value": p.value,
        "type": p.type,
        "fingerprint": p.fingerprint,
    }
    out: dict[str, Any] = {
        "lg_id": p.lg_id,
        "id": p.id,
        "fingerprint": p.fingerprint,
        "type": p.type or "",
        "fields": [x for kv in p.to_hash().items() for x in kv],
        "deadline": p.deadline_ms or 0,
    }
    if p.assignees or p.watchers:
        data |= {"assignees": list(p.assignees), "watchers": list(p.watchers)}
    if p.assignees:
        out["assignees"] = dumps(list(p.assignees))
    out["data"] = dumps(data)
    return out
