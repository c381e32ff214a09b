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
from langgraph.types import Command

from bench._common import DURABILITY, pct
from bench._meter import Usage

INPUT = {"request": "ship it"}
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


async def _until(events: AsyncIterator[tuple[str, Any]], *wanted: str) -> Any:
    async for event, data in events:
        if event in wanted:
            return data
        if event in ("run.failed", "run.cancelled", "error"):
            raise RuntimeError(f"{event}: {data}")
    raise RuntimeError(f"the stream ended before {wanted}")


def broker_cycle(client: httpx.AsyncClient, base: str) -> Cycle:
    """POST /runs → SSE until run.interrupted → resolve → the same SSE until run.succeeded."""

    async def one() -> float:
        body = {"agent_id": "approval", "input": INPUT}
        run = (await client.post(f"{base}/runs", json=body)).raise_for_status().json()
        url = f"{base}/runs/{run['run_id']}/events"
        async with client.stream("GET", url) as stream:
            events = sse(stream)
            waiting = await _until(events, "run.interrupted")
            iid = waiting["data"]["interrupt_ids"][0]
            t0 = time.perf_counter()
            resolved = await client.post(f"{base}/interrupts/{iid}/resolve", json={"value": True})
            resolved.raise_for_status()
            await _until(events, "run.succeeded")
            return time.perf_counter() - t0

    return one


async def next_interrupt(events: AsyncIterator[tuple[str, Any]]) -> str:
    """The id of the run's next interrupt, from its next ``run.interrupted`` event."""
    waiting = await _until(events, "run.interrupted")
    return str(waiting["data"]["interrupt_ids"][0])
