"""LangGraph threads on the broker's records.

A broker thread is the runs on one thread id; LangGraph also makes threads before any
run (``POST /threads``), which keep their metadata in a small record (and may name
their graph). A thread's status is its newest run's: only one run of a thread is ever
active, and it is the newest. Every read here answers a key limited to agents as
broker/api/visibility.py does: a thread of an agent it may not see is not found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from broker.api.langgraph.errors import ThreadExists
from broker.core import auth, errors, ids
from broker.core.codec import iso, loads
from broker.core.store import Store


@dataclass
class ThreadInfo:
    thread_id: str
    agent_id: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_ms: int = 0
    updated_ms: int = 0
    newest: dict[str, Any] | None = None
    """The newest run's view (broker/core/records.py ``RunRecord.view``)."""

    @property
    def status(self) -> str:
        run = self.newest
        if run is None:
            return "idle"
        status = run["status"]
        if status == "interrupted":
            return "interrupted" if run["pending_interrupts"] else "busy"
        return {"queued": "busy", "running": "busy", "failed": "error"}.get(status, "idle")

    def view(self) -> dict[str, Any]:
        """The thread without its values and interrupts (``with_state`` adds those)."""
        meta = dict(self.metadata)
        if self.agent_id:
            meta.update(graph_id=self.agent_id, assistant_id=self.agent_id)
        return {
            "thread_id": self.thread_id,
            "created_at": iso(self.created_ms),
            "updated_at": iso(self.updated_ms),
            "metadata": meta,
            "status": self.status,
            "values": {},
            "interrupts": {},
        }


async def _run_at(store: Store, thread_id: str, order: str) -> dict[str, Any] | None:
    page = await store.list_runs(
        status=None, agent_id=None, thread_id=thread_id, limit=1, cursor=None, order=order
    )
    return page.items[0] if page.items else None


async def read(store: Store, thread_id: str) -> ThreadInfo | None:
    """The thread, or None when it has neither a record nor runs."""
    if not ids.is_id(thread_id):
        return None
    rec = await store.r.hgetall(store.keys.thread_record(thread_id))
    newest = await _run_at(store, thread_id, "desc")
    if not rec and newest is None:
        return None
    oldest = await _run_at(store, thread_id, "asc") if newest is not None else None
    created = int(rec["created_ms"]) if rec else _ms(oldest)
    updated = max(int(rec.get("updated_ms") or 0), _ms(newest, "updated_at"))
    agent = newest["agent_id"] if newest else (rec.get("graph_id") or None)
    return ThreadInfo(thread_id, agent, loads(rec.get("metadata")) or {}, created, updated, newest)


def _ms(run: dict[str, Any] | None, key: str = "created_at") -> int:
    return int(datetime.fromisoformat(run[key]).timestamp() * 1000) if run else 0


async def seen(store: Store, principal: auth.Principal, thread_id: str) -> ThreadInfo:
    """The thread, or ThreadNotFound when it does not exist or is of an agent the key may
    not see (or has runs of one)."""
    info = await read(store, thread_id)
    if info is not None and info.agent_id is not None:
        owners = await store.thread_agents(thread_id) or {info.agent_id}
        if not all(principal.sees(a) for a in owners):
            info = None
    if info is None:
        raise errors.ThreadNotFound(f"no thread {thread_id!r} for this API key")
    return info


async def create(
    store: Store,
    thread_id: str,
    metadata: dict[str, Any],
    agent_id: str | None,
    if_exists: str,
    principal: auth.Principal,
) -> ThreadInfo:
    """Makes a thread record; an existing thread is 409, or itself with ``do_nothing``."""
    made = await store.make_thread(thread_id, metadata, agent_id)
    if made is not None:
        return ThreadInfo(thread_id, agent_id, metadata, made, made)
    info = await seen(store, principal, thread_id)
    if if_exists == "do_nothing":
        return info
    raise ThreadExists(
        f"thread {thread_id!r} already exists; pass if_exists='do_nothing' to get it back"
    )
