"""A thread's graph state in the Agent Server's shapes, read from its checkpoints.

Interrupts come from the broker's records, not the checkpoint: only those still pending
are shown, so one answered elsewhere (and not applied yet) never looks answerable.
Each is keyed by the task that raised it, as the Agent Server keys a thread's
``interrupts``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from langgraph.types import StateSnapshot

from broker.api.langgraph.shapes import interrupt, jsonable
from broker.api.threads import ThreadStates
from broker.core.records import InterruptRecord

HISTORY = 100
"""How many checkpoints a stream looks back through for the steps of its run."""


async def snapshot(threads: ThreadStates, agent_id: str | None, thread_id: str) -> Any:
    if agent_id is None or agent_id not in threads.graphs:
        return None
    snap = await threads.snapshot(agent_id, thread_id)
    return snap if snap is not None and snap.config else None


def values(snap: StateSnapshot | None) -> Any:
    return jsonable(snap.values) if snap is not None else {}


def interrupts_map(
    snap: StateSnapshot | None, pending: list[InterruptRecord]
) -> dict[str, list[dict[str, Any]]]:
    """``{task id: [interrupt, …]}`` of the pending interrupts."""
    task_of = {i.id: t.id for t in (snap.tasks if snap else ()) for i in t.interrupts}
    out: dict[str, list[dict[str, Any]]] = {}
    for h in pending:
        out.setdefault(task_of.get(h.lg_id, h.lg_id), []).append(interrupt(h))
    return out


def _checkpoint(config: Any, thread_id: str) -> dict[str, Any] | None:
    if not config:
        return None
    c = config.get("configurable", {})
    return {
        "thread_id": thread_id,
        "checkpoint_ns": c.get("checkpoint_ns", ""),
        "checkpoint_id": c.get("checkpoint_id"),
        "checkpoint_map": None,
    }


def thread_state(
    thread_id: str, snap: StateSnapshot | None, pending: list[InterruptRecord]
) -> dict[str, Any]:
    """``GET /threads/{id}/state``: values, next nodes, tasks with their interrupts."""
    if snap is None:
        return {
            "values": {},
            "next": [],
            "tasks": [],
            "checkpoint": {"thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": None},
            "parent_checkpoint": None,
            "metadata": {},
            "created_at": None,
            "checkpoint_id": None,
            "parent_checkpoint_id": None,
            "interrupts": [],
        }
    by_lg = {h.lg_id: h for h in pending}
    tasks = [
        {
            "id": t.id,
            "name": t.name,
            "path": jsonable(list(t.path)),
            "error": repr(t.error) if t.error is not None else None,
            "interrupts": [interrupt(by_lg[i.id]) for i in t.interrupts if i.id in by_lg],
            "checkpoint": None,
            "state": None,
            "result": jsonable(t.result),
        }
        for t in snap.tasks
    ]
    checkpoint = _checkpoint(snap.config, thread_id)
    parent = _checkpoint(snap.parent_config, thread_id)
    return {
        "values": jsonable(snap.values),
        "next": list(snap.next),
        "tasks": tasks,
        "checkpoint": checkpoint,
        "parent_checkpoint": parent,
        "metadata": jsonable(snap.metadata or {}),
        "created_at": snap.created_at,
        "checkpoint_id": checkpoint["checkpoint_id"] if checkpoint else None,
        "parent_checkpoint_id": parent["checkpoint_id"] if parent else None,
        "interrupts": [interrupt(h) for h in pending],
    }


def _ms(created_at: str | None) -> int:
    return int(datetime.fromisoformat(created_at).timestamp() * 1000) if created_at else 0


async def steps(
    threads: ThreadStates, agent_id: str, thread_id: str, run_id: str, since_ms: int
) -> list[tuple[Any, dict[str, Any]]]:
    """The steps ``run_id`` took since ``since_ms``, oldest first: each checkpoint's
    values, and what each node of the step before wrote (``updates``)."""
    graph = threads.graphs.get(agent_id)
    if graph is None:
        return []
    config = {"configurable": {"thread_id": thread_id}}
    history = [s async for s in graph.aget_state_history(config, limit=HISTORY)]
    out: list[tuple[Any, dict[str, Any]]] = []
    for child, parent in zip(history, [*history[1:], None], strict=True):
        if (child.metadata or {}).get("run_id") != run_id or _ms(child.created_at) < since_ms:
            continue
        updates = {
            t.name: jsonable(t.result)
            for t in (parent.tasks if parent is not None else ())
            if t.result is not None and not t.name.startswith("__")
        }
        out.append((jsonable(child.values), updates))
    return out[::-1]
