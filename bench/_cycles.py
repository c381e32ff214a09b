"""Approval cycles for bench/compare.py: the in-process floor, the broker over HTTP and
SSE, and the driver that runs ``n`` cycles on ``c`` concurrent asyncio clients.

Every cycle function returns its resume leg in seconds: from sending the answer (or
calling the graph with ``Command(resume=...)``) to seeing the run end.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from interrupt_broker_client import AsyncClient, Event
from langgraph.types import Command

from bench._common import DURABILITY, ONCE, pct
from bench._meter import Usage

INPUT = {"request": "ship it"}
LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=100)
TIMEOUT_S = 60.0


def broker_client(base: str) -> AsyncClient:
    """The project's client of the broker at ``base``, its httpx.AsyncClient tuned as the
    drivers' shared one (timeout, connection limits)."""
    return AsyncClient(base, timeout=TIMEOUT_S, limits=LIMITS, retry=ONCE)


Cycle = Callable[[], Awaitable[float]]


@dataclass
class Row:
    """One measured window: ``cycles`` whole cycles on ``clients`` concurrent clients."""

    name: str
    clients: int
    cycles: int
    wall_s: float
    legs: list[float] = field(default_factory=list)  # resume legs, seconds
    cpu_s: float | None = None  # this process's CPU over the window (floor rows)
    redis: Usage | None = None  # the Redis server's commands and CPU (broker saver floor)

    @property
    def per_s(self) -> float:
        return self.cycles / self.wall_s

    @property
    def p50_ms(self) -> float:
        return pct(self.legs, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return pct(self.legs, 99) * 1000


async def drive(name: str, cycles: int, clients: int, one: Cycle) -> Row:
    """``cycles`` calls of ``one()`` spread over ``clients`` concurrent drivers."""
    counts = [cycles // clients + (i < cycles % clients) for i in range(clients)]
    legs: list[float] = []

    async def driver(n: int) -> None:
        for _ in range(n):
            legs.append(await one())

    t0 = time.perf_counter()
    await asyncio.gather(*(driver(n) for n in counts))
    return Row(name, clients, cycles, time.perf_counter() - t0, legs)


async def warm(one: Cycle, clients: int) -> None:
    """A few unmeasured cycles: connections open, scripts loaded, code paths hot."""
    await asyncio.gather(*(one() for _ in range(clients)))


def floor_cycle(graph: Any) -> Cycle:
    """The graph called directly: input → interrupt, then Command(resume) → end.

    With the checkpoint durability the worker runs graphs with by default."""

    async def one() -> float:
        config: Any = {"configurable": {"thread_id": uuid.uuid4().hex}}
        first = await graph.ainvoke(INPUT, config, durability=DURABILITY)
        assert "__interrupt__" in first, first
        t0 = time.perf_counter()
        out = await graph.ainvoke(Command(resume=True), config, durability=DURABILITY)
        leg = time.perf_counter() - t0
        assert out.get("answer") is True, out
        return leg

    return one


async def sse(response: httpx.Response) -> AsyncIterator[tuple[str, Any]]:
    """(event, data) of each Server-Sent Event of a streamed response."""
    event, data = "message", list[str]()
    async for line in response.aiter_lines():
        if not line:
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", list[str]()
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
    if data:
        yield event, json.loads("\n".join(data))


def broker_cycle(broker: AsyncClient) -> Cycle:
    """Through the project's client: ``start_run`` → the run's events until
    run.interrupted → ``resolve`` → the same events until run.succeeded."""

    async def one() -> float:
        run = await broker.start_run("approval", INPUT)
        events = broker.run_events(run["run_id"])
        waiting = await next_event(events, "run.interrupted")
        iid = waiting["data"]["interrupt_ids"][0]
        t0 = time.perf_counter()
        await broker.resolve(iid, True)
        await next_event(events, "run.succeeded")
        leg = time.perf_counter() - t0
        async for _ in events:  # nothing follows the end: the stream closes
            pass
        return leg

    return one


async def next_event(events: AsyncIterator[Event], *wanted: str) -> Event:
    """The next of the client's events of a type in ``wanted``."""
    async for event in events:
        if event["type"] in wanted:
            return event
        if event["type"] in ("run.failed", "run.cancelled"):
            raise RuntimeError(f"{event['type']}: {event}")
    raise RuntimeError(f"the stream ended before {wanted}")


async def next_interrupt(events: AsyncIterator[Event]) -> str:
    """The id of the run's next interrupt, from its next ``run.interrupted`` event."""
    waiting = await next_event(events, "run.interrupted")
    return str(waiting["data"]["interrupt_ids"][0])
