"""Run and interrupt records: their Redis hash fields and their public JSON shape."""

from __future__ import annotations

from typing import Any, Literal

from broker.core.codec import iso, loads

RunStatus = Literal["queued", "running", "interrupted", "succeeded", "failed", "cancelled"]
InterruptStatus = Literal["pending", "resolved", "expired", "cancelled"]

RUN_STATUSES: tuple[str, ...] = (
    "queued",
    "running",
    "interrupted",
    "succeeded",
    "failed",
    "cancelled",
)
TERMINAL_RUN_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
INTERRUPT_STATUSES: tuple[str, ...] = ("pending", "resolved", "expired", "cancelled")


def interrupt_type(value: Any) -> str | None:
    """The interrupt's type: ``value["type"]`` when it is a string."""
    if isinstance(value, dict):
        t = value.get("type")
        if isinstance(t, str) and t:
            return t
        if "action_requests" in value:
            return "tool_approval"
    return None


def interrupt_view(h: dict[str, str]) -> dict[str, Any]:
    """The public JSON of one interrupt hash."""
    resolution = loads(h.get("resolution"))
    return {
        "id": h["id"],
        "interrupt_id": h["lg_id"],
        "run_id": h["run_id"],
        "thread_id": h["thread_id"],
        "agent_id": h["agent_id"],
        "type": h.get("type") or None,
        "value": loads(h.get("value")),
        "response_schema": loads(h.get("response_schema")),
        "status": h["status"],
        "created_at": iso(h.get("created_ms")),
        "expires_at": iso(h.get("expires_at_ms")),
        "expiry": {"on_expire": h["on_expire"], "default": loads(h.get("expiry_default"))}
        if h.get("on_expire")
        else None,
        "updated_at": iso(h.get("updated_ms")),
        "resolution": resolution,
    }


def run_view(h: dict[str, str], pending: list[str]) -> dict[str, Any]:
    """The public JSON of one run hash, with the ids of its pending interrupts."""
    return {
        "run_id": h["id"],
        "thread_id": h["thread_id"],
        "agent_id": h["agent_id"],
        "status": h["status"],
        "input": loads(h.get("input")),
        "metadata": loads(h.get("metadata")) or {},
        "pending_interrupts": pending,
        "output": loads(h.get("output")),
        "error": loads(h.get("error")),
        "attempts": int(h.get("attempts") or 0),
        "created_at": iso(h.get("created_ms")),
        "updated_at": iso(h.get("updated_ms")),
    }
