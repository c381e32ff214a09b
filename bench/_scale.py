"""The rest of bench/compare.py: API overhead against bare Starlette (E), the inbox at
scale (F) and no growth with a run's history (G)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis.asyncio as aioredis

from bench._cycles import next_interrupt, sse
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


@dataclass
class Growth:
    times: list[float]  # resolve → next interrupt observed, per answer
    commands: list[float]  # Redis commands per answer (INFO commandstats)
    get_one: list[float]  # GET /runs/{id} with 1 past interrupt
    get_past: list[float]  # … with ``past`` past interrupts
    questions: int
    past: int


async def no_growth(
    b: Broker, client: httpx.AsyncClient, questions: int, past: int, gets: int
) -> Growth:
    """One run of ``loop`` answered ``max(questions, past)`` times over HTTP, the next
    interrupt seen on the run's SSE; GET /runs/{id} timed after 1 and ``past`` answers.

    Commands per answer: INFO commandstats from one answer's resolve to the next (what
    trails one answer lands in the next window, the same for every answer); nothing else
    runs meanwhile."""
    answers = max(questions, past)
    meter = aioredis.Redis.from_url(b.env["REDIS_URL"])
    times: list[float] = []
    commands: list[float] = []
    gets_at: dict[int, list[float]] = {}
    try:
        body = {"agent_id": "loop", "input": {"steps": answers + 1}}
        run = (await client.post(f"{b.url}/runs", json=body)).raise_for_status().json()
        run_url = f"{b.url}/runs/{run['run_id']}"
        async with client.stream("GET", f"{run_url}/events") as stream:
            events = sse(stream)
            iid = await next_interrupt(events)
            prev = await usage(meter)
            for k in range(1, answers + 1):
                t0 = time.perf_counter()
                resp = await client.post(f"{b.url}/interrupts/{iid}/resolve", json={"value": k})
                resp.raise_for_status()
                iid = await next_interrupt(events)
                times.append(time.perf_counter() - t0)
                now = await usage(meter)
                commands.append((now - prev).total)
                if k in (1, past):
                    gets_at[k] = await timed_get(client, run_url, gets)
                    view = (await client.get(run_url)).json()
                    assert view["pending_interrupts"] == [iid], view
                    now = await usage(meter)
                prev = now
        (await client.post(f"{run_url}/cancel")).raise_for_status()
    finally:
        await meter.aclose()
    return Growth(times, commands, gets_at[1], gets_at[past], questions, past)
