"""Resolve → resume cycles per second with N workers, against the in-process floor.

K runs of a looping graph are driven at once: each cycle answers the run's pending
interrupt over HTTP and waits for its next interrupt event. The floor resumes the same
graph on the same saver, K at a time, in this process.

    uv run python -m bench.throughput [--runs 16] [--cycles 20] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from interrupt_broker_client import AsyncClient
from langgraph.types import Command

from bench._common import ONCE, redis_url
from bench.graphs import loop
from bench.latency import _next_event
from broker.core.keys import Keys
from broker.core.saver import RedisCheckpointSaver
from tests.harness import Broker


async def floor(url: str, runs: int, cycles: int) -> float:
    client = aioredis.Redis.from_url(url)
    saver = RedisCheckpointSaver(client, Keys(f"benchtp{uuid.uuid4().hex[:6]}"))
    graph = loop.copy(update={"checkpointer": saver})

    async def drive(i: int) -> None:
        config: dict[str, Any] = {"configurable": {"thread_id": f"floor-{i}"}}
        await graph.ainvoke({"steps": cycles + 1}, config, durability="sync")
        for n in range(cycles):
            await graph.ainvoke(Command(resume=n), config, durability="sync")

    t0 = time.perf_counter()
    await asyncio.gather(*(drive(i) for i in range(runs)))
    elapsed = time.perf_counter() - t0
    for i in range(runs):
        await saver.adelete_thread(f"floor-{i}")
    await client.aclose()
    return runs * cycles / elapsed


async def broker(url: str, runs: int, cycles: int, workers: int) -> float:
    prefix = f"benchtp{uuid.uuid4().hex[:6]}"
    b = Broker(
        url,
        prefix,
        Path(tempfile.mkdtemp()),
        BROKER_AGENTS="loop=bench.graphs:loop",
        BROKER_WORKER_MAX_JOBS=str(max(runs, 10)),
    )
    r = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        for _ in range(workers):
            b.start_worker()
        b.start_api()
        b.wait_ready()
        async with AsyncClient(b.url, timeout=60, retry=ONCE) as api:

            async def drive() -> None:
                run = await api.start_run("loop", {"steps": cycles + 1})
                stream, run_id = Keys(prefix).events, run["run_id"]
                last = await _next_event(r, stream, run_id, "0", {"run.interrupted"})
                for n in range(cycles):
                    iid = (await api.get_run(run_id))["pending_interrupts"][0]
                    await api.resolve(iid, n)
                    last = await _next_event(
                        r, stream, run_id, last, {"run.interrupted", "run.succeeded"}
                    )

            t0 = time.perf_counter()
            await asyncio.gather(*(drive() for _ in range(runs)))
            elapsed = time.perf_counter() - t0
    finally:
        b.stop()
        keys = [k async for k in r.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await r.delete(*keys)
        await r.aclose()
    return runs * cycles / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=16)
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    with redis_url() as url:
        base = await floor(url, args.runs, args.cycles)
        results = [(n, await broker(url, args.runs, args.cycles, n)) for n in args.workers]
    print(f"resolve → resume cycles/s, {args.runs} runs at once, {args.cycles} cycles")
    print(f"{'path':<36} {'cycles/s':>9} {'of floor':>9}")
    print(f"{'in-process floor (same graph+saver)':<36} {base:>9.1f} {1:>8.0%}")
    for n, rate in results:
        print(f"{f'broker, {n} worker process(es)':<36} {rate:>9.1f} {rate / base:>8.0%}")


if __name__ == "__main__":
    asyncio.run(main())
