"""The API's fixed cost per request, and reads that cost what they return.

Side by side in one run, one httpx client, interleaved blocks (every block times each
path in turn, so load from elsewhere on the machine falls on all of them alike):

- GET /healthz of the broker against a bare Starlette app (one route returning the same
  JSON) served by the same uvicorn options (``broker.cli.uvicorn_options``);
- GET /interrupts?limit=50 with --pending pending interrupts (filled through the store's
  recording path, as bench/inbox.py does), its first page and one half-way down by cursor;
- GET /runs/{id} of a run with one interrupt and of one with --history past interrupts
  (recorded, answered and applied one after another, as a real run does) and one open.

Each row gives p50/p99/mean ms and its p50 against the floor it is judged by.
``--profile DIR`` then samples the API with py-spy under each kind of request and prints
the hottest frames.

    uv run python -m bench.api_overhead [--pending 100000] [--history 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis

from bench._common import pct, redis_url
from bench.inbox import fill
from broker.core import channel
from broker.core.codec import now_ms
from broker.core.connections import queue_pool
from broker.core.records import Channel, InterruptRecord, RunRecord
from broker.core.settings import Settings
from broker.core.store import Attempt, Store
from tests.harness import Broker, free_port, wait_until
from tests.principals import keys_json, new_key

KEY = new_key("bench")


def bare_app() -> Any:
    """The floor: a Starlette app with one route returning what GET /healthz returns."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def healthz(_: Any) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/healthz", healthz)])


def _serve_bare(port: int) -> None:
    import uvicorn

    from broker.cli import uvicorn_options

    options = uvicorn_options(Settings(), host="127.0.0.1", port=port)
    uvicorn.run("bench.api_overhead:bare_app", factory=True, **options)


def _interrupt(run: RunRecord, i: int) -> InterruptRecord:
    return InterruptRecord.new(
        id=str(uuid.uuid4()),
        lg_id=uuid.uuid4().hex,
        run_id=run.id,
        thread_id=run.thread_id,
        agent_id=run.agent_id,
        value={"type": "ask", "content": f"question {i}"},
        created_ms=now_ms(),
        updated_ms=now_ms(),
    )


async def run_with_history(store: Store, queue: Any, past: int) -> str:
    """A run that raised ``past`` interrupts, each answered and applied, and one open."""
    run = await store.create_run("naming", None, {"messages": []}, {})
    job = "bench-0"
    begun = await store.begin_attempt(run.id, "", job)
    assert isinstance(begun, Attempt), begun
    for i in range(past + 1):
        applied = [a.id for a in begun.answers]
        asked = _interrupt(begun.run, i)
        await store.record_interrupts(begun.run, [asked], applied, job_id=job)
        if i == past:
            return run.id
        await channel.answer(store, queue, asked.id, "yes", channel=Channel.REST)
        job = f"bench-{i + 1}"
        begun = await store.begin_attempt(run.id, "", job)
        assert isinstance(begun, Attempt), begun
    return run.id


async def measure(
    api: httpx.AsyncClient, targets: dict[str, str], blocks: int, per_block: int
) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in targets}
    names = list(targets)
    for block in range(blocks):
        # rotate which path goes first, so none always follows another
        for name in names[block % len(names) :] + names[: block % len(names)]:
            for _ in range(per_block):
                t0 = time.perf_counter()
                r = await api.get(targets[name])
                samples[name].append(time.perf_counter() - t0)
                assert r.status_code == 200, (name, r.status_code, r.text[:300])
    return samples


# Leaf frames where a thread waits rather than works: the event loop in uvloop's C code
# (py-spy sees the Python frame that called it), idle thread-pool workers.
IDLE = ("Runner.run ", "Condition.wait ", "WorkerThread.run ", "Thread.run ")
# Frames under which the server runs everything: they say nothing.
OUTER = ("<frozen runpy>", "broker/cli.py", "uvicorn/main.py", "uvicorn/server.py")
OUTER += ("uvicorn/_compat.py", "asyncio/runners.py", "outage.py", "gate.py")
MINE = ("broker/", "serialize_response", "solve_dependencies", "run_in_threadpool")


def top_frames(raw: Path, n: int = 12) -> list[str]:
    """The hottest frames of a py-spy raw (collapsed) profile, as shares of the samples
    that were working (not waiting in the event loop or an idle worker thread)."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = idle = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        total += int(count)
        if frames[-1].startswith(IDLE):
            idle += int(count)
            continue
        own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    busy = max(total - idle, 1)
    out = [f"  {busy} working of {total} samples; shares of the working ones:"]
    out += [f"  self  {100 * c / busy:5.1f}%  {f}" for f, c in own.most_common(n)]
    # inclusive: the project's own frames, and the framework's steps around them
    hot = [
        (f, c)
        for f, c in inclusive.most_common()
        if any(m in f for m in MINE) and not any(o in f for o in OUTER)
    ]
    out += [f"  incl  {100 * c / busy:5.1f}%  {f}" for f, c in hot[:n]]
    return out


async def profile(api: httpx.AsyncClient, pid: int, targets: dict[str, str], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, url in targets.items():
        path = out / f"{name.replace(' ', '_').replace('/', '')}.txt"
        spy = subprocess.Popen(
            [
                *("py-spy", "record", "--pid", str(pid), "--format", "raw", "-o", str(path)),
                *("--duration", "10", "--rate", "200", "--nonblocking"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while spy.poll() is None:
            await api.get(url)
        print(f"\npy-spy, API under {name} ({path}):")
        print("\n".join(top_frames(path)))


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pending", type=int, default=100_000)
    parser.add_argument("--history", type=int, default=1000)
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--per-block", type=int, default=50)
    parser.add_argument("--profile", type=Path, help="write py-spy profiles here")
    parser.add_argument("--serve-bare", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        _serve_bare(args.serve_bare)
    else:
        asyncio.run(main(args))


async def main(args: argparse.Namespace) -> None:
    prefix = f"benchapi{uuid.uuid4().hex[:6]}"
    logs = Path(tempfile.mkdtemp(prefix="bench-api-"))
    with redis_url() as url:
        r = aioredis.Redis.from_url(url, decode_responses=True)
        settings = Settings(redis_url=url, key_prefix=prefix)
        store = Store(r, settings)
        queue = queue_pool(settings, store.keys.queue)
        t0 = time.perf_counter()
        await fill(store, args.pending)
        short = await run_with_history(store, queue, 0)
        long = await run_with_history(store, queue, args.history)
        print(f"filled in {time.perf_counter() - t0:.1f} s")
        index = store.keys.interrupts_by_status("pending")
        half = args.pending // 2
        (_, middle), *_ = await r.zrange(index, half, half, withscores=True)
        keys = keys_json({"bench": (KEY, ["interrupts:read"], None)})
        b = Broker(url, prefix, logs, BROKER_AUTH="on", BROKER_API_KEYS=keys)
        bare_port = free_port()
        bare = subprocess.Popen(
            [sys.executable, "-m", "bench.api_overhead", "--serve-bare", str(bare_port)],
            env=b.env,
            stdout=open(logs / "bare.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        bare_url = f"http://127.0.0.1:{bare_port}"
        try:
            b.start_api()
            wait_until(lambda: _up(bare_url + "/healthz"), "the bare app to answer")
            targets = {
                "bare /healthz": f"{bare_url}/healthz",
                "broker /healthz": f"{b.url}/healthz",
                "/interrupts?limit=50": f"{b.url}/interrupts?limit=50",
                "/interrupts?limit=50 mid": f"{b.url}/interrupts?limit=50&cursor={int(middle)}",
                "/runs/{id} 1 interrupt": f"{b.url}/runs/{short}",
                f"/runs/{{id}} {args.history} past": f"{b.url}/runs/{long}",
            }
            headers = {"Authorization": f"Bearer {KEY}"}
            async with httpx.AsyncClient(headers=headers, timeout=30) as api:
                await measure(api, targets, 1, 20)  # warm up
                got = await measure(api, targets, args.blocks, args.per_block)
                report(got, args)
                if args.profile:
                    assert b.api is not None
                    del targets["bare /healthz"], targets["/interrupts?limit=50 mid"]
                    await profile(api, b.api.p.pid, targets, args.profile)
        finally:
            bare.terminate()
            bare.wait(15)
            b.stop()
            await queue.aclose()
            found = [k async for k in r.scan_iter(match=f"{prefix}:*", count=5000)]
            for i in range(0, len(found), 5000):
                await r.delete(*found[i : i + 5000])
            await r.aclose()


def _up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def report(got: dict[str, list[float]], args: argparse.Namespace) -> None:
    p50 = {name: pct(s, 50) * 1000 for name, s in got.items()}
    names = list(got)
    floors = {
        "broker /healthz": ("bare /healthz", 1.5),
        "/interrupts?limit=50": ("broker /healthz", 2.0),
        "/interrupts?limit=50 mid": ("/interrupts?limit=50", None),
        names[5]: (names[4], 1.2),
    }
    print(
        f"\nGET latency, {args.pending} pending interrupts, {args.blocks} blocks x "
        f"{args.per_block} requests per path, cpus={os.cpu_count()}"
    )
    print(f"{'path':<28} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}   ratio of p50s (target)")
    for name, samples in got.items():
        ms = [s * 1000 for s in samples]
        line = f"{name:<28} {p50[name]:8.3f} {pct(ms, 99):8.3f} {sum(ms) / len(ms):8.3f}"
        if name in floors:
            floor, target = floors[name]
            want = f" (<= {target}x)" if target else ""
            line += f"   {p50[name] / p50[floor]:.2f}x {floor}{want}"
        print(line)


if __name__ == "__main__":
    cli()
