"""The inbox at scale: GET /interrupts latency with many pending, and memory per interrupt.

Pending interrupts are written through the worker's own recording path (``RunLedger``),
so the records and indexes are exactly what a real run leaves; then the API is timed
over HTTP.

    uv run python -m bench.inbox [--pending 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import redis.asyncio as aioredis

from bench._common import HEADER, redis_url, row
from broker.core.codec import now_ms
from broker.core.records import InterruptRecord
from broker.core.settings import Settings
from broker.core.store import Attempt, Store
from tests.harness import Broker

AGENTS = ("naming", "scheduling", "tool_approval", "parallel")


async def fill(store: Store, n: int, *, progress: bool = True) -> None:
    sem = asyncio.Semaphore(64)

    async def one(i: int) -> None:
        async with sem:
            agent = AGENTS[i % len(AGENTS)]
            run = await store.create_run(agent, None, {"messages": []}, {})
            begun = await store.begin_attempt(run.id, "", "bench")
            assert isinstance(begun, Attempt)
            value = {"type": "approval" if i % 2 else "ask", "content": f"question {i}"}
            pending = InterruptRecord.new(
                id=str(uuid.uuid4()),
                lg_id=uuid.uuid4().hex,
                run_id=run.id,
                thread_id=run.thread_id,
                agent_id=agent,
                value=value,
                created_ms=now_ms(),
                updated_ms=now_ms(),
            )
            await store.record_interrupts(begun.run, [pending], [], job_id="bench")

    done = 0
    step = 5000
    while done < n:
        batch = min(step, n - done)
        await asyncio.gather(*(one(done + j) for j in range(batch)))
        done += batch
        if progress:
            print(f"  {done} pending", flush=True)


async def timed(
    api: httpx.AsyncClient, path: str, params: dict, n: int, **kw: object
) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = await api.get(path, params=params, **kw)  # type: ignore[arg-type]
        out.append(time.perf_counter() - t0)
        assert r.status_code in (200, 304), r.text
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pending", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    prefix = f"benchinbox{uuid.uuid4().hex[:6]}"
    with redis_url() as url:
        r = aioredis.Redis.from_url(url, decode_responses=True)
        store = Store(r, Settings(redis_url=url, key_prefix=prefix))
        before = (await r.info("memory"))["used_memory"]
        t0 = time.perf_counter()
        await fill(store, args.pending)
        fill_s = time.perf_counter() - t0
        after = (await r.info("memory"))["used_memory"]
        b = Broker(url, prefix, Path(tempfile.mkdtemp()))
        try:
            b.start_api()
            async with httpx.AsyncClient(base_url=b.url, timeout=30) as api:
                first = await api.get("/interrupts", params={"limit": 50})
                etag = first.headers["etag"]
                deep = {"limit": 50, "cursor": first.json()["next_cursor"]}
                # a cursor far into the inbox: page 1000 costs what page 1 does
                far = first.json()
                for _ in range(20):
                    far = (
                        await api.get(
                            "/interrupts", params={"limit": 500, "cursor": far["next_cursor"]}
                        )
                    ).json()
                rows = [
                    (
                        "first page (limit 50)",
                        await timed(api, "/interrupts", {"limit": 50}, args.requests),
                    ),
                    ("second page by cursor", await timed(api, "/interrupts", deep, args.requests)),
                    (
                        "page ~10k deep by cursor",
                        await timed(
                            api,
                            "/interrupts",
                            {"limit": 50, "cursor": far["next_cursor"]},
                            args.requests,
                        ),
                    ),
                    (
                        "filtered by agent",
                        await timed(
                            api,
                            "/interrupts",
                            {"limit": 50, "agent_id": "scheduling"},
                            args.requests,
                        ),
                    ),
                    (
                        "filtered by type",
                        await timed(
                            api, "/interrupts", {"limit": 50, "type": "ask"}, args.requests
                        ),
                    ),
                    (
                        "unchanged, If-None-Match → 304",
                        await timed(
                            api,
                            "/interrupts",
                            {"limit": 50},
                            args.requests,
                            headers={"If-None-Match": etag},
                        ),
                    ),
                ]
        finally:
            b.stop()
            keys = [k async for k in r.scan_iter(match=f"{prefix}:*", count=5000)]
            for i in range(0, len(keys), 5000):
                await r.delete(*keys[i : i + 5000])
            await r.aclose()
    print(f"GET /interrupts with {args.pending} pending, Redis at {url}")
    print(f"filled in {fill_s:.1f} s through the worker's recording path")
    print(HEADER.replace("cycles", "reqs  "))
    for name, samples in rows:
        print(row(name, samples))
    per = (after - before) / args.pending
    print(f"Redis memory per pending interrupt (with its run, indexes, events): {per:,.0f} bytes")


if __name__ == "__main__":
    asyncio.run(main())
