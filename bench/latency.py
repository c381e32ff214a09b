"""Answer → resumed latency: the broker against the in-process floor.

For each cycle the script answers the pending interrupt over HTTP and waits for the
run's next ``run.interrupted`` (or ``run.succeeded``) event on its Redis stream. The
floor runs the same graph on the same checkpoint saver in this process, with no broker.

    uv run python -m bench.latency [--cycles 200]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from interrupt_broker_client import AsyncClient
from langgraph.types import Command

from bench._common import DURABILITY, HEADER, ONCE, redis_url, row
from bench.graphs import loop
from broker.core.codec import loads
from broker.core.keys import Keys
from broker.core.saver import RedisCheckpointSaver
from tests.harness import Broker


async def floor(url: str, cycles: int) -> list[float]:
    client = aioredis.Redis.from_url(url)
    keys = Keys(f"benchfloor{uuid.uuid4().hex[:6]}")
    saver = RedisCheckpointSaver(client, keys)
    graph = loop.copy(update={"checkpointer": saver})
    config: dict[str, Any] = {"configurable": {"thread_id": "floor"}}
    await graph.ainvoke({"steps": cycles + 1}, config, durability=DURABILITY)
    samples = []
    for n in range(cycles):
        t0 = time.perf_counter()
        await graph.ainvoke(Command(resume=n), config, durability=DURABILITY)
        samples.append(time.perf_counter() - t0)
    await saver.adelete_thread("floor")
    await client.aclose()
    return samples


async def _next_event(
    r: aioredis.Redis, stream: str, run_id: str, last: str, kinds: set[str]
) -> str:
    """Follows the global event stream from ``last`` to the run's next event of ``kinds``."""
    while True:
        got = await r.xread({stream: last}, block=10_000, count=100)
        if not got:
            raise TimeoutError(f"no event on {stream}")
        for eid, fields in got[0][1]:
            last = eid
            event = loads(fields["event"])
            if event["run_id"] == run_id and event["type"] in kinds:
                return str(last)


async def broker_cycles(url: str, cycles: int, poll_delay: str, wake: bool) -> list[float]:
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    b = Broker(
        url,
        prefix,
        Path(tempfile.mkdtemp()),
        BROKER_AGENTS="loop=bench.graphs:loop",
        BROKER_POLL_DELAY_S=poll_delay,
        BROKER_WAKE_WORKERS="1" if wake else "0",
    )
    r = aioredis.Redis.from_url(url, decode_responses=True)
    samples: list[float] = []
    try:
        b.start_worker()
        b.start_api()
        b.wait_ready()
        async with AsyncClient(b.url, timeout=30, retry=ONCE) as api:
            run = await api.start_run("loop", {"steps": cycles + 1})
            stream, run_id = Keys(prefix).events, run["run_id"]
            last = await _next_event(r, stream, run_id, "0", {"run.interrupted"})
            for n in range(cycles):
                iid = (await api.get_run(run_id))["pending_interrupts"][0]
                t0 = time.perf_counter()
                await api.resolve(iid, n)
                last = await _next_event(
                    r, stream, run_id, last, {"run.interrupted", "run.succeeded"}
                )
                samples.append(time.perf_counter() - t0)
    finally:
        b.stop()
        keys = [k async for k in r.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await r.delete(*keys)
        await r.aclose()
    return samples


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=200)
    args = parser.parse_args()
    with redis_url() as url:
        base = await floor(url, args.cycles)
        woken = await broker_cycles(url, args.cycles, "0.5", wake=True)
        polled = await broker_cycles(url, min(args.cycles, 40), "0.5", wake=False)
    floor_p50 = sorted(base)[len(base) // 2] * 1000
    print(f"answer → resumed (next interrupt event observed), Redis at {url}")
    print(HEADER)
    print(row("in-process floor (same graph+saver)", base, floor_p50))
    print(row("broker, wake-up on answer", woken, floor_p50))
    print(row("broker, arq polling only (0.5 s)", polled, floor_p50))
    sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main())
