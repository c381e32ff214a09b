"""Event fan-out: one reader of the global stream per API process, many subscribers.

Each subscriber has a bounded queue. The reader never waits on a subscriber: one that
falls behind is marked overflowed and told to reconnect from its last id, so a slow
client neither slows the others nor grows memory without bound.

When Redis fails under the reader, or the process starts to drain, every subscriber is
ended with the reason (``Subscription.get`` raises it), so its stream sends a reconnect
hint rather than going silent; the reader itself backs off and reads on from where it
was once Redis answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from broker.core import errors, ids, runlog
from broker.core.codec import loads

log = logging.getLogger("broker.api.events")

Event = tuple[str, dict[str, Any]]
TERMINAL_EVENTS = frozenset({"run.succeeded", "run.failed", "run.cancelled"})


def stream_id(eid: str) -> tuple[int, int]:
    """Parses a stream id (``ms-seq``); raises ValueError for anything else."""
    parsed = ids.stream_id(eid)
    if parsed is None:
        raise ValueError(f"{eid!r} is not a stream id")
    return parsed


def is_stream_id(eid: str) -> bool:
    """Whether ``eid`` is an id Redis takes as a stream cursor (see broker/core/ids.py)."""
    return ids.stream_id(eid) is not None


def after(a: str, b: str) -> bool:
    """Whether stream id ``a`` comes after ``b``."""
    return stream_id(a) > stream_id(b)


@dataclass(eq=False)
class Subscription:
    match: Callable[[dict[str, Any]], bool]
    queue: asyncio.Queue[Event]
    overflowed: bool = False
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    ended: errors.BrokerError | None = None

    def end(self, reason: errors.BrokerError) -> None:
        """Ends the subscription: its next ``get`` raises ``reason``."""
        self.ended = reason
        self.wakeup.set()

    def check(self) -> None:
        """Raises the reason the subscription was ended for, if it was."""
        if self.ended is not None:
            raise self.ended

    def reset(self) -> None:
        """Empties the queue and clears the overflow, before a catch-up replay."""
        while not self.queue.empty():
            self.queue.get_nowait()
        self.overflowed = False
        self.wakeup.clear()

    async def get(self, timeout: float) -> Event | None:
        """The next event; None after ``timeout`` or once overflowed (check ``overflowed``).

        Raises the reason (``RedisUnavailable``, ``ShuttingDown``) once ended.
        """
        self.check()
        if self.overflowed:
            return None
        if not self.queue.empty():
            return self.queue.get_nowait()
        getter = asyncio.ensure_future(self.queue.get())
        waker = asyncio.ensure_future(self.wakeup.wait())
        try:
            done, _ = await asyncio.wait(
                {getter, waker}, timeout=timeout, return_when="FIRST_COMPLETED"
            )
        finally:
            waker.cancel()
            if not getter.done():
                getter.cancel()
        if getter in done and not getter.cancelled():
            return getter.result()
        self.check()
        return None


# How long one XREAD waits on the server; the hub's client allows for it in its timeout.
BLOCK_MS = 5000
# The reader's back-off after a failed read: doubled each time, up to the cap.
BACKOFF_S = (0.25, 5.0)


class EventHub:
    """Reads the global event stream and hands each event to matching subscribers.

    It reads only while someone subscribes. The first subscriber after a quiet spell
    sets where reading resumes, the stream's end, before it is registered, so every
    event after its subscription reaches it live, and its own replay covers the rest.
    """

    def __init__(self, redis: aioredis.Redis, stream: str, *, block_ms: int = BLOCK_MS) -> None:
        self.r = redis
        self.stream = stream
        self.block_ms = block_ms
        self.subs: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._position = "$"
        self._idle = True
        self._wake = asyncio.Event()
        self._resuming = asyncio.Lock()
        self._failing: errors.BrokerError | None = None
        self._draining: errors.BrokerError | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def subscribe(
        self, match: Callable[[dict[str, Any]], bool], maxsize: int
    ) -> Subscription:
        if self._draining is not None:
            raise self._draining
        sub = Subscription(match, asyncio.Queue(maxsize))
        async with self._resuming:
            if self._idle or self._failing is not None:
                # after a failure every earlier subscriber was ended: read on from the
                # end, and let this read tell whether Redis answers again
                last = await self.r.xrevrange(self.stream, count=1)
                self._position = last[0][0] if last else "0-0"
                self._idle = False
                self._failing = None
                self._wake.set()
            self.subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self.subs.discard(sub)

    def end_all(self, reason: errors.BrokerError) -> None:
        """Ends every subscription with ``reason``; each stream sends its hint and ends."""
        for sub in list(self.subs):
            sub.end(reason)

    def drain(self) -> None:
        """The process is stopping: end every stream, and refuse new ones."""
        self._draining = errors.ShuttingDown(
            "this API process is shutting down; reconnect, resuming from resume_from"
        )
        self.end_all(self._draining)

    def dispatch(self, eid: str, event: dict[str, Any]) -> None:
        for sub in list(self.subs):
            if sub.overflowed or not sub.match(event):
                continue
            try:
                sub.queue.put_nowait((eid, event))
            except asyncio.QueueFull:
                sub.overflowed = True
                sub.wakeup.set()

    async def _run(self) -> None:
        delay = BACKOFF_S[0]
        while True:
            if not self.subs:
                # nobody listens: read nothing until a subscriber sets the position
                self._idle = True
                self._failing = None
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                got = await self.r.xread(
                    {self.stream: self._position}, block=self.block_ms, count=500
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = errors.unavailable(exc) or errors.RedisUnavailable(
                    f"reading events failed ({type(exc).__name__}); retry later"
                )
                if self._failing is None:
                    log.warning("event stream read failed; retrying from %s", self._position)
                self._failing = reason
                self.end_all(reason)
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_S[1])
                continue
            if self._failing is not None:
                log.info("event stream readable again, from %s", self._position)
            self._failing = None
            delay = BACKOFF_S[0]
            for _, entries in got or []:
                for eid, fields in entries:
                    self._position = eid
                    try:
                        event = loads(fields["event"])
                    except (KeyError, ValueError):
                        continue
                    self.dispatch(eid, event)


async def replay(
    r: aioredis.Redis,
    stream: str,
    since: str,
    match: Callable[[dict[str, Any]], bool] | None = None,
    *,
    chunk: int = 500,
) -> AsyncIterator[Event]:
    """Every event of ``stream`` after id ``since`` ("0" for all), oldest first."""
    lower = "-" if since in ("0", "0-0") else f"({since}"
    while True:
        entries = await r.xrange(stream, min=lower, max="+", count=chunk)
        for eid, fields in entries:
            event = loads(fields["event"])
            if match is None or match(event):
                yield eid, event
        if len(entries) < chunk:
            return
        lower = f"({entries[-1][0]}"


async def first_id(r: aioredis.Redis, stream: str) -> str | None:
    """The oldest id still in the stream (older ones were trimmed)."""
    entries = await r.xrange(stream, count=1)
    return str(entries[0][0]) if entries else None


async def last_id(r: aioredis.Redis, stream: str) -> str:
    """The newest id in the stream, or "0" when it is empty."""
    entries = await r.xrevrange(stream, count=1)
    return str(entries[0][0]) if entries else "0"


async def follow_run(
    r: aioredis.Redis,
    hub: EventHub,
    log: str,
    owner: runlog.Owner,
    since: str,
    *,
    until: frozenset[str],
    queue_max: int,
    heartbeat_s: float,
) -> AsyncIterator[Event | None]:
    """The run's events after ``since``: stored ones first, then live ones, each once.

    Stored ones come from the run's log (``log``, broker/core/runlog.py). Ends after an
    event whose type is in ``until``. Yields None every ``heartbeat_s`` without an event,
    so the caller can send a keep-alive or notice a disconnect. A subscriber that falls
    behind goes back to the log, so nothing is lost.
    """

    def mine(event: dict[str, Any]) -> bool:
        return bool(event.get("run_id") == owner.run_id)

    sub = await hub.subscribe(mine, queue_max)
    last = since if since not in ("0", "") else "0-0"
    try:
        while True:
            # (re)start from the stored log; what arrives live meanwhile is queued,
            # and the id check below drops what the replay already gave
            sub.reset()
            async for eid, event in runlog.entries(r, log, owner, last):
                sub.check()
                last = eid
                yield eid, event
                if event["type"] in until:
                    return
            while True:
                got = await sub.get(heartbeat_s)
                if sub.overflowed:
                    break
                if got is None:
                    yield None
                    continue
                eid, event = got
                if not after(eid, last):
                    continue
                last = eid
                yield eid, event
                if event["type"] in until:
                    return
    finally:
        hub.unsubscribe(sub)
