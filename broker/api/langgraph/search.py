"""Thread search over the broker's indexes.

Threads are found from the runs index of the status asked for (``interrupted``: the
runs waiting on interrupts; ``busy``: queued, running and interrupted ones, kept when
nothing is pending; ``error``: failed ones) and, for ``idle`` or any status, from the
threads made before a run. At most ``SCAN`` entries of each are read, newest first: a
search sees the newest threads, which is what an inbox asks for.
"""

from __future__ import annotations

from typing import Any

from broker.api.langgraph import threadinfo
from broker.core import auth
from broker.core.records import RunStatus
from broker.core.store import Store

SCAN = 1000
PAGE = 200
RUN_STATUSES: dict[str | None, tuple[RunStatus | None, ...]] = {
    "interrupted": (RunStatus.INTERRUPTED,),
    "busy": (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.INTERRUPTED),
    "error": (RunStatus.FAILED,),
    "idle": (None,),
    None: (None,),
}


def matches(have: Any, want: dict[str, Any]) -> bool:
    """Every key of ``want`` has its value in ``have`` (the Agent Server's filter)."""
    return isinstance(have, dict) and all(have.get(k) == v for k, v in want.items())


async def _from_runs(
    store: Store, principal: auth.Principal, status: RunStatus | None
) -> list[str]:
    out: list[str] = []
    cursor: str | None = None
    read = 0
    while read < SCAN:
        page = await store.list_runs(
            status=status,
            agent_id=None,
            thread_id=None,
            limit=PAGE,
            cursor=cursor,
            order="desc",
            visible=principal.agents,
        )
        out += [r["thread_id"] for r in page.items]
        read += len(page.items)
        cursor = page.next_cursor
        if not cursor:
            break
    return out


async def _made(store: Store) -> list[str]:
    return list(await store.r.zrevrange(store.keys.thread_records, 0, SCAN - 1))


async def threads(
    store: Store, principal: auth.Principal, body: Any
) -> list[threadinfo.ThreadInfo]:
    """The threads the key may see that match ``body`` (a ThreadSearch), sorted."""
    if body.ids:
        candidates = list(body.ids)
    else:
        candidates = []
        for status in RUN_STATUSES[body.status]:
            candidates += await _from_runs(store, principal, status)
        if body.status in (None, "idle"):
            candidates += await _made(store)
    found: list[threadinfo.ThreadInfo] = []
    for thread_id in dict.fromkeys(candidates):
        info = await threadinfo.read(store, thread_id)
        if info is None:
            # a made thread whose record expired leaves its index entry behind
            await store.r.zrem(store.keys.thread_records, thread_id)
            continue
        owners = await store.thread_agents(thread_id) or ({info.agent_id} - {None})
        if not all(principal.sees(a) for a in owners if a):
            continue
        if body.status and info.status != body.status:
            continue
        if body.metadata and not matches(info.view()["metadata"], body.metadata):
            continue
        found.append(info)
    key = {
        "thread_id": lambda t: t.thread_id,
        "status": lambda t: t.status,
        "created_at": lambda t: t.created_ms,
        "updated_at": lambda t: t.updated_ms,
    }[body.sort_by]
    found.sort(key=key, reverse=body.sort_order == "desc")
    return found
