"""The hot path of bench/compare.py: the in-process floor (A), the broker over HTTP (B)
with its costs per cycle (D) and optional profiles, and ``langgraph dev`` (C)."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis.asyncio as aioredis
from langgraph.checkpoint.memory import InMemorySaver

from bench import _lgdev
from bench._cycles import Cycle, Row, broker_client, broker_cycle, drive, floor_cycle, warm
from bench._meter import Usage, reading_cost, usage
from bench._procs import Profiles, cpu_all
from bench.approval import graph
from broker.core.keys import Keys
from broker.core.saver import RedisCheckpointSaver
from tests.harness import Broker, delete_prefix

AGENTS = "approval=bench.approval:graph,loop=bench.graphs:loop"
SETTLE_S = 0.3


@dataclass
class Plan:
    """How many cycles each row runs, by concurrent clients."""

    floor: dict[int, int]
    broker: dict[int, int]
    peer: dict[int, int]  # langgraph dev polls its run queue: ~1 s a stream, so fewer
    idle_s: float
    healthz: int
    gets: int
    pending: int
    questions: int
    past: int


@dataclass
class Costs:
    """Per whole cycle, idle background taken out (D)."""

    cycles: int
    cpu_s: dict[str, float]  # by process
    redis: Usage  # commands (incl. inside scripts) and Redis CPU (INFO)
    background: Usage  # idle, per second
    background_cpu: dict[str, float] = field(default_factory=dict)  # idle, per second


async def floor_rows(url: str, plan: Plan) -> list[Row]:
    """The graph called in this process: InMemorySaver, then the broker's saver."""
    client, meter = aioredis.Redis.from_url(url), aioredis.Redis.from_url(url)
    keys = Keys(f"benchcmp{uuid.uuid4().hex[:6]}")
    savers = {
        "in-process, InMemorySaver": InMemorySaver(),
        "in-process, broker saver": RedisCheckpointSaver(client, keys),
    }
    rows = []
    try:
        for name, saver in savers.items():
            one = floor_cycle(graph.copy(update={"checkpointer": saver}))
            for clients, cycles in plan.floor.items():
                await warm(one, clients)
                overhead = await reading_cost(meter)
                cpu0, redis0 = time.process_time(), await usage(meter)
                row = await drive(name, cycles, clients, one)
                row.cpu_s = time.process_time() - cpu0
                if isinstance(saver, RedisCheckpointSaver):
                    row.redis = (await usage(meter)) - redis0 - overhead
                rows.append(row)
    finally:
        await client.aclose()
        await meter.aclose()
        delete_prefix(url, keys.prefix)
    return rows


def start_broker(url: str, workers: int, max_jobs: int) -> Broker:
    """The API and ``workers`` worker processes with production settings (leases, retries,
    retention on; auth off, no replicas so no WAIT)."""
    b = Broker(
        url,
        f"benchcmp{uuid.uuid4().hex[:6]}",
        Path(tempfile.mkdtemp(prefix="benchcmp-")),
        BROKER_AGENTS=AGENTS,
        BROKER_WORKER_MAX_JOBS=str(max_jobs),
    )
    for _ in range(workers):
        b.start_worker()
    b.start_api()
    b.wait_ready()
    return b


async def redis_pid(url: str) -> int:
    r = aioredis.Redis.from_url(url)
    try:
        return int((await r.info("server"))["process_id"])
    finally:
        await r.aclose()


async def _idle(meter: aioredis.Redis, pids: dict[str, int], idle_s: float) -> Costs:
    """What the processes and Redis spend per second with nothing to do."""
    overhead = await reading_cost(meter)
    u0, c0 = await usage(meter), cpu_all(pids)
    await asyncio.sleep(idle_s)
    u1, c1 = await usage(meter), cpu_all(pids)
    bg = (u1 - u0 - overhead).scaled(1 / idle_s)
    return Costs(0, {}, Usage(), bg, {k: (c1[k] - c0[k]) / idle_s for k in pids})


async def broker_rows(
    b: Broker,
    plan: Plan,
    clients: list[int],
    *,
    name: str,
    costs_at: int | None = None,
    profile: Path | None = None,
) -> tuple[list[Row], Costs | None]:
    """Whole cycles over HTTP + SSE, through the project's client; at ``costs_at``
    clients also CPU per process and Redis commands and CPU per cycle, and py-spy
    profiles in an extra window."""
    async with broker_client(b.url) as broker:
        return await _broker_rows(b, broker_cycle(broker), plan, clients, name, costs_at, profile)


async def _broker_rows(
    b: Broker,
    one: Cycle,
    plan: Plan,
    clients: list[int],
    name: str,
    costs_at: int | None,
    profile: Path | None,
) -> tuple[list[Row], Costs | None]:
    url = b.env["REDIS_URL"]
    meter = aioredis.Redis.from_url(url)
    assert b.api is not None
    pids = {"API": b.api.p.pid}
    pids.update({f"worker {i + 1}": w.p.pid for i, w in enumerate(b.workers)})
    pids["redis-server"] = await redis_pid(url)
    pids["driver (this process)"] = os.getpid()
    rows, costs = [], None
    try:
        await warm(one, max(clients))
        await asyncio.sleep(SETTLE_S)
        idle = await _idle(meter, pids, plan.idle_s) if costs_at else None
        for n in clients:
            await warm(one, n)
            overhead = await reading_cost(meter)
            u0, c0, t0 = await usage(meter), cpu_all(pids), time.perf_counter()
            row = await drive(name, plan.broker[n], n, one)
            await asyncio.sleep(SETTLE_S)  # the runs' last bookkeeping
            u1, c1, window = await usage(meter), cpu_all(pids), time.perf_counter() - t0
            rows.append(row)
            if n == costs_at and idle is not None:
                used = u1 - u0 - overhead - idle.background.scaled(window)
                cpu = {k: c1[k] - c0[k] - idle.background_cpu[k] * window for k in pids}
                cycles = row.cycles
                costs = Costs(
                    cycles,
                    {k: v / cycles for k, v in cpu.items()},
                    used.scaled(1 / cycles),
                    idle.background,
                    idle.background_cpu,
                )
                if profile is not None:
                    named = {k.split(" ")[0].lower(): v for k, v in pids.items()}
                    spy = Profiles(profile, {k: named[k] for k in ("api", "worker")})
                    try:
                        await asyncio.sleep(1)  # py-spy attached
                        await drive(name, plan.broker[n], n, one)
                    finally:
                        spy.stop()
    finally:
        await meter.aclose()
    return rows, costs


async def peer_rows(
    client: httpx.AsyncClient, plan: Plan, jobs: int
) -> tuple[list[Row], str, float | None]:
    """``langgraph dev`` on the same graph: its rows, its versions (or why none), and its
    process CPU per cycle at the most clients."""
    venv, versions = _lgdev.ensure_venv()
    if venv is None:
        return [], versions, None
    rows, cpu = [], None
    try:
        with _lgdev.serving(venv, jobs) as server:
            one: Cycle = _lgdev.lgdev_cycle(client, server.url)
            for n, cycles in plan.peer.items():
                await warm(one, n)
                c0 = cpu_all({"p": server.proc.pid})["p"]
                rows.append(await drive("langgraph dev", cycles, n, one))
                cpu = (cpu_all({"p": server.proc.pid})["p"] - c0) / cycles
    except (RuntimeError, AssertionError, httpx.HTTPError) as exc:
        return [], f"{versions}; failed: {type(exc).__name__}: {exc}"[:2000], None
    return rows, versions, cpu
