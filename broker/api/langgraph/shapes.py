"""The Agent Server's JSON shapes, made from the broker's records.

An assistant is a registered agent (``assistant_id`` = ``graph_id`` = the agent id); a
run is the broker's run, which lives on through every resume of its interrupts; an
interrupt is ``{"value", "id"}`` with LangGraph's interrupt id, the id a resume map
names (the broker's own id is accepted there too).
"""

from __future__ import annotations

import time
from typing import Any

from broker.core.codec import dumps, iso, loads
from broker.core.records import InterruptRecord, RunRecord, RunStatus

STARTED = iso(time.time_ns() // 1_000_000)
"""When this process loaded its agents: an assistant's ``created_at``."""

RUN_STATUS = {
    RunStatus.QUEUED: "pending",
    RunStatus.RUNNING: "running",
    RunStatus.INTERRUPTED: "interrupted",
    RunStatus.SUCCEEDED: "success",
    RunStatus.FAILED: "error",
    RunStatus.CANCELLED: "interrupted",
}


def assistant(agent_id: str, description: str) -> dict[str, Any]:
    return {
        "assistant_id": agent_id,
        "graph_id": agent_id,
        "config": {},
        "context": {},
        "metadata": {"created_by": "system"},
        "name": agent_id,
        "description": description or None,
        "version": 1,
        "created_at": STARTED,
        "updated_at": STARTED,
    }


def run(h: RunRecord, pending: bool = True) -> dict[str, Any]:
    """A run; ``pending``: whether it waits on an interrupt (interrupted with none
    pending means its answer is on the way: running)."""
    status = RUN_STATUS[h.status]
    if h.status == RunStatus.INTERRUPTED and not pending:
        status = "running"
    return {
        "run_id": h.id,
        "thread_id": h.thread_id,
        "assistant_id": h.agent_id,
        "created_at": iso(h.created_ms),
        "updated_at": iso(h.updated_ms),
        "status": status,
        "metadata": h.metadata,
        "multitask_strategy": "reject",
        "kwargs": {},
    }


def interrupt(h: InterruptRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"value": h.value, "id": h.lg_id}
    if h.response_schema is not None:
        out["response_schema"] = h.response_schema
    return out


def jsonable(value: Any) -> Any:
    """Graph values (messages and all) as the JSON the Agent Server sends."""
    return loads(dumps(value))
