"""The rest of bench/compare.py: API overhead against bare Starlette (E), the inbox at
scale (F) and no growth with a run's history (G)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import httpx
import redis.asyncio as aioredis
from interrupt_broker_client import AsyncClient, Event

from bench._cycles import broker_client, next_interrupt
from bench._meter import own_redis, usage, used_memory
from bench.inbox import fill
from broker.core.settings import Settings
from broker.core.store import Store
from tests.harness import ROOT, Broker, free_port, wait_until


async def timed_get(client: httpx.AsyncClient, url: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = await client.get(url)
        out.append(time.perf_counter() - t0)
        r.raise_for_status()
    return out


async def interleaved(
    client: httpx.AsyncClient, urls: dict[str, str], n: int, block: int
) -> dict[str, list[float]]:
    """``n`` sequential GETs of each URL, in alternating blocks so noise hits them all."""
    out: dict[str, list[float]] = {name: [] for name in urls}
    for url in urls.values():
        await timed_get(client, url, min(50, n))  # warm-up, not kept
    while any(len(v) < n for v in out.values()):
        for name, url in urls.items():
            out[name] += await timed_get(client, url, min(block, n - len(out[name])))
    return out


async def healthz_vs_bare(
    client: httpx.AsyncClient, broker_url: str, n: int
) -> dict[str, list[float]]:
    """GET /healthz on the broker's API and on bench/_bare.py, interleaved in blocks."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = Path(tempfile.mkdtemp(prefix="benchbare-")) / "bare.log"
    with open(log, "wb") as out:
        bare = subprocess.Popen(
            [sys.executable, "-m", "bench._bare", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _status(f"{url}/healthz") == 200, "the bare app")
        urls = {"broker": f"{broker_url}/healthz", "bare": f"{url}/healthz"}
        return await interleaved(client, urls, n, block=100)
    finally:
        bare.terminate()
        bare.wait(20)


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


@dataclass
class Inbox:
    pending: int
    fill_s: float
    bytes_per: float
    samples: dict[str, list[float]]  # "page" and "healthz"

    @property
    def rate(self) -> float:
        return self.pending / self.fill_s


async def inbox_at_scale(client: httpx.AsyncClient, n: int, gets: int) -> Inbox:
    """``n`` pending interrupts written through the worker's recording path (as
    bench/inbox.py) on a redis-server of its own; then a page of 50 against /healthz."""
    prefix = f"benchcmp{uuid.uuid4().hex[:6]}"
    with own_redis() as url:
        r = aioredis.Redis.from_url(url, decode_responses=True)
        try:
            store = Store(r, Settings(redis_url=url, key_prefix=prefix))
            await asyncio.sleep(0.5)
            m0, t0 = await used_memory(r), time.perf_counter()
            await fill(store, n, progress=False)
            fill_s = time.perf_counter() - t0
            await asyncio.sleep(0.5)
            m1 = await used_memory(r)
            b = Broker(url, prefix, Path(tempfile.mkdtemp(prefix="benchcmp-")))
            try:
                b.start_api()
                urls = {"page": f"{b.url}/interrupts?limit=50", "healthz": f"{b.url}/healthz"}
                samples = await interleaved(client, urls, gets, block=25)
            finally:
                b.stop()
        finally:
            await r.aclose()
    return Inbox(n, fill_s, (m1 - m0) / n, samples)


WINDOW = 25  # answers per window compared


class _Loop:
    """One run of ``loop`` followed on its events (through the project's client): each
    answer is timed to its next interrupt."""

    def __init__(
        self, broker: AsyncClient, base: str, run_id: str, events: AsyncGenerator[Event, None]
    ) -> None:
        self.broker, self.run_id, self.events = broker, run_id, events
        self.url = f"{base}/runs/{run_id}"
        self.iid = ""
        self.times: list[float] = []
        self.commands: list[float] = []

    @classmethod
    async def start(
        cls, broker: AsyncClient, base: str, steps: int, stack: contextlib.AsyncExitStack
    ) -> _Loop:
        run = await broker.start_run("loop", {"steps": steps})
        events = cast(AsyncGenerator[Event, None], broker.run_events(run["run_id"]))
        stack.push_async_callback(events.aclose)
        loop = cls(broker, base, run["run_id"], events)
        loop.iid = await next_interrupt(loop.events)
        return loop

    async def answer(self, value: int) -> float:
        """Answers the pending interrupt; seconds until the next one is seen."""
        t0 = time.perf_counter()
        await self.broker.resolve(self.iid, value)
        self.iid = await next_interrupt(self.events)
        return time.perf_counter() - t0

    async def check(self) -> None:
        """The run waits on the one interrupt this follower saw last."""
        view = await self.broker.get_run(self.run_id)
        assert view["pending_interrupts"] == [self.iid], view

    async def cancel(self) -> None:
        await self.broker.cancel_run(self.run_id)


@dataclass
class Growth:
    old: _Loop  # answered max(questions, past) times
    young: _Loop  # answered WINDOW times, interleaved with the old run's answers up to #questions
    get_one: list[float]  # GET /runs/{id} of a run with 1 past interrupt …
    get_past: list[float]  # … and of the old run, interleaved
    questions: int
    past: int


async def no_growth(
    b: Broker, client: httpx.AsyncClient, questions: int, past: int, gets: int
) -> Growth:
    """An old ``loop`` run answered ``max(questions, past)`` times over HTTP, each answer
    timed to the next interrupt seen on the run's SSE. While it answers #questions-24 to
    #questions, a young run gets its answers #1-#25, one after each, so the two windows
    share the machine's noise. Then GET /runs/{id} of the old run (``past`` past
    interrupts) interleaved with a run answered once.

    Commands per answer: INFO commandstats from one answer's resolve to the next (what
    trails an answer lands in the next window, alike for every answer); nothing else
    runs meanwhile."""
    answers = max(questions, past)
    late = range(questions - WINDOW + 1, questions + 1)
    meter = aioredis.Redis.from_url(b.env["REDIS_URL"])
    try:
        async with contextlib.AsyncExitStack() as stack:
            broker = await stack.enter_async_context(broker_client(b.url))
            old = await _Loop.start(broker, b.url, answers + 1, stack)
            young = await _Loop.start(broker, b.url, WINDOW + 1, stack)
            once = await _Loop.start(broker, b.url, 2, stack)
            await once.answer(0)
            prev = await usage(meter)
            for k in range(1, answers + 1):
                runs = (old, young) if k in late else (old,)
                for run in runs:
                    took = await run.answer(k)
                    now = await usage(meter)
                    run.times.append(took)
                    run.commands.append((now - prev).total)
                    prev = now
            urls = {"one": once.url, "past": old.url}
            got = await interleaved(client, urls, gets, block=25)
            for run in (old, young, once):
                await run.check()
                await run.cancel()
    finally:
        await meter.aclose()
    return Growth(old, young, got["one"], got["past"], questions, past)
