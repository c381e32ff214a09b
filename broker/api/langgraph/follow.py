"""Following a run until it settles, and what a wait, a join or a stream then says.

A run settles when it ends or stops on interrupts still pending: an answered interrupt
whose run has not resumed yet is not a stop. The run's event log is read from a cursor
taken before the request changed anything, so nothing that happens after is missed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from arq.connections import ArqRedis

from broker.api.events import TERMINAL_EVENTS, EventHub, follow_run
from broker.api.langgraph import state
from broker.api.langgraph.messages import MODES as MESSAGE_MODES
from broker.api.langgraph.messages import MessageStream, sse
from broker.api.langgraph.shapes import interrupt
from broker.api.threads import ThreadStates
from broker.core import errors, runlog
from broker.core.records import InterruptRecord, RunRecord, RunStatus
from broker.core.settings import Settings
from broker.core.store import Store

Settled = tuple[RunRecord, list[InterruptRecord]]
WAKE = frozenset({"run.interrupted", "interrupt.withdrawn", *TERMINAL_EVENTS})
"""The events after which a run may have settled."""


@dataclass(frozen=True)
class Ctx:
    """What following a run needs, from the app's state."""

    store: Store
    hub: EventHub
    queue: ArqRedis
    threads: ThreadStates
    settings: Settings


async def cursor(store: Store, run_id: str) -> str:
    """The run's newest event id: follow from here to see what happens next."""
    return await runlog.last_id(store.r, store.keys.run_events(run_id))


async def settled(store: Store, run_id: str) -> Settled | None:
    run = await store.run(run_id)
    if run.status.terminal:
        return run, []
    if run.status == RunStatus.INTERRUPTED:
        pending = await store.pending_interrupts(run_id)
        if pending:
            return run, pending
    return None


@dataclass(frozen=True)
class Seen:
    """An event of the run, as it happened (``follow`` with ``events``)."""

    event: dict[str, Any]


async def follow(
    ctx: Ctx, run: RunRecord, since: str, *, events: bool = False
) -> AsyncIterator[Settled | Seen | None]:
    """None for each quiet spell (a keep-alive), then the settled run, last; with
    ``events``, each of the run's events on the way, as ``Seen``."""
    done = await settled(ctx.store, run.id)
    if done is not None:
        yield done
        return
    async for item in follow_run(
        ctx.store.r,
        ctx.hub,
        ctx.store.keys.run_events(run.id),
        runlog.Owner(run.id, run.thread_id, run.agent_id),
        since,
        until=TERMINAL_EVENTS,
        queue_max=ctx.settings.subscriber_queue_max,
        heartbeat_s=ctx.settings.sse_heartbeat_s,
    ):
        if item is None:
            yield None
            continue
        if events:
            yield Seen(item[1])
        if item[1]["type"] in WAKE and (done := await settled(ctx.store, run.id)):
            yield done
            return
    yield await ctx.store.run(run.id), []


async def until_settled(ctx: Ctx, run: RunRecord, since: str) -> Settled:
    last: Settled | None = None
    async for item in follow(ctx, run, since):
        if isinstance(item, tuple):
            last = item
    assert last is not None
    return last


def _error(run: RunRecord) -> dict[str, Any]:
    err = run.error if isinstance(run.error, dict) else {}
    return {"error": "run_failed", "message": str(err.get("message") or "the run failed")}


async def result(ctx: Ctx, run: RunRecord, pending: list[InterruptRecord]) -> Any:
    """What ``runs.wait`` and ``runs.join`` return: the thread's values, with
    ``__interrupt__`` while it waits for answers; ``__error__`` for a failed run."""
    if run.status == RunStatus.FAILED:
        return {"__error__": _error(run)}
    snap = await state.snapshot(ctx.threads, run.agent_id, run.thread_id)
    values = state.values(snap)
    if pending and isinstance(values, dict):
        values["__interrupt__"] = [interrupt(h) for h in pending]
    return values


async def stream(
    ctx: Ctx, run: RunRecord, since: str, since_ms: int, modes: frozenset[str]
) -> AsyncIterator[str]:
    """The Agent Server's SSE for a run: ``metadata``, its messages as they come
    (``messages``, ``messages-tuple``; broker/api/langgraph/messages.py), then each step
    the run took (as ``values`` and ``updates``), then its interrupts, or an ``error``."""
    yield sse("metadata", {"run_id": run.id, "attempt": 1})
    said = MessageStream(modes, run) if modes & MESSAGE_MODES else None
    try:
        done: Settled | None = None
        async for item in follow(ctx, run, since, events=said is not None):
            if item is None:
                yield ": heartbeat\n\n"
            elif isinstance(item, Seen):
                for frame in said.frames(item.event) if said else ():
                    yield frame
            else:
                done = item
        assert done is not None
        ended, pending = done
        if ended.status == RunStatus.FAILED:
            yield sse("error", _error(ended))
            return
        steps = await state.steps(ctx.threads, run.agent_id, run.thread_id, run.id, since_ms)
        if not steps and "values" in modes:
            snap = await state.snapshot(ctx.threads, run.agent_id, run.thread_id)
            steps = [(state.values(snap), {})]
        for values, updates in steps:
            if "values" in modes:
                yield sse("values", values)
            if "updates" in modes and updates:
                yield sse("updates", updates)
        if pending:
            asked = {"__interrupt__": [interrupt(h) for h in pending]}
            for mode in ("values", "updates"):
                if mode in modes:
                    yield sse(mode, asked)
    except Exception as exc:
        # Redis went away or the API is draining: an error event with a retry hint
        error = errors.unavailable(exc)
        if error is None:
            raise
        retry = f"retry: {errors.RETRY_AFTER_S * 1000}\n"
        yield retry + sse("error", {"error": error.code, "message": error.message})
