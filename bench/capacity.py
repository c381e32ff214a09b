"""The capacity of one Redis primary: what an approval cycle costs it, what a pending
interrupt and a finished run hold in memory, and the ceilings that follow.

A cycle is POST /runs of the ``naming`` agent with ``agent_name`` set (so it asks only
for approval) → its interrupt → POST /interrupts/{id}/resolve → the run succeeded. ``-c``
drivers run cycles at once over HTTP, through the project's client (which keys every
start and answer with an ``Idempotency-Key``, so their kept responses are counted),
against the real API and worker processes, on a
redis-server of this script's own; each waits for its run's events by one follower of
the global event stream. Per cycle, from INFO: commands (INFO commandstats, so commands
inside scripts count too), bytes in and out (total_net_input_bytes,
total_net_output_bytes), Redis CPU (used_cpu_sys + used_cpu_user). Taken out: the idle
background (heartbeats, arq's polling, the reconciler, the expiry pass), measured as a
rate over an idle window first; the follower's own reads (counted as sent, their CPU
measured by reading the same ranges again); INFO's own cost.

The in-process floor is the same graph on the same checkpoint saver, called directly
(no API, no worker, no broker records), measured the same way in the same run. With one
and then two worker processes, the difference shows what each wake-up PUBLISH costs:
it wakes every worker, and each polls arq's queue.

Each row is measured over ``--repeat`` windows of ``--cycles`` cycles: counts and bytes
are their mean; CPU and speed the best window, the one least disturbed by whatever else
shares the machine (CPU seconds are robust to sharing, not immune to it).

Memory is measured on another redis-server of its own: used_memory with ``--held`` runs
waiting on their interrupt, then with the same runs finished (minus a warm start), and
where a finished run's bytes are, by key family (MEMORY USAGE of every key).

    uv run python -m bench.capacity [--cycles 150] [-c 16] [--repeat 3] [--held 500]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from interrupt_broker_client import AsyncClient
from langgraph.types import Command

from bench._common import DURABILITY, ONCE
from bench._meter import Follower, Usage, own_redis, reading_cost, usage, used_memory
from broker.core.keys import Keys
from broker.core.saver import RedisCheckpointSaver
from tests.harness import Broker, delete_prefix

INPUT = {"messages": [{"role": "user", "content": "hi"}], "agent_name": "Ada"}
GIB = 1024**3
SETTLE_S = 0.3


@dataclass
class Measured:
    name: str
    per_cycle: Usage
    cycles_per_s: float  # wall clock, on this machine
    background: Usage | None = None  # per second, idle


async def _split(cycles: int, conc: int, one: Any) -> float:
    """Runs ``cycles`` calls of ``one()`` on ``conc`` drivers; the seconds it took."""
    counts = [cycles // conc + (i < cycles % conc) for i in range(conc)]

    async def drive(n: int) -> None:
        for _ in range(n):
            await one()

    t0 = time.perf_counter()
    await asyncio.gather(*(drive(n) for n in counts))
    return time.perf_counter() - t0


async def floor(url: str, cycles: int, conc: int, repeat: int) -> Measured:
    from agent.naming import graph

    keys = Keys(f"benchcap{uuid.uuid4().hex[:6]}")
    client, meter = aioredis.Redis.from_url(url), aioredis.Redis.from_url(url)
    g = graph.copy(update={"checkpointer": RedisCheckpointSaver(client, keys)})

    async def one() -> None:
        config: dict[str, Any] = {"configurable": {"thread_id": uuid.uuid4().hex}}
        await g.ainvoke(INPUT, config, durability=DURABILITY)
        await g.ainvoke(Command(resume=True), config, durability=DURABILITY)

    await one()  # scripts loaded, connections open
    overhead = await reading_cost(meter)
    runs = []
    for _ in range(repeat):
        before = await usage(meter)
        wall = await _split(cycles, conc, one)
        used = (await usage(meter)) - before - overhead
        runs.append((used.scaled(1 / cycles), cycles / wall))
    await client.aclose()
    await meter.aclose()
    delete_prefix(url, keys.prefix)
    return Measured("in-process floor", *_best(runs))


async def _cycle(api: AsyncClient, follower: Follower) -> str:
    run = await api.start_run("naming", INPUT)
    waiting = await follower.wait(run["run_id"], "run.interrupted")
    iid = waiting["data"]["interrupt_ids"][0]
    await api.resolve(iid, True)
    await follower.wait(run["run_id"], "run.succeeded")
    return str(run["run_id"])


def _serving(url: str, workers: int, conc: int) -> Broker:
    b = Broker(
        url,
        f"benchcap{uuid.uuid4().hex[:6]}",
        Path(tempfile.mkdtemp()),
        BROKER_AGENTS="naming=agent.naming:graph",
        BROKER_WORKER_MAX_JOBS=str(max(conc, 10)),
    )
    for _ in range(workers):
        b.start_worker()
    b.start_api()
    b.wait_ready()
    return b


def _best(runs: list[tuple[Usage, float]]) -> tuple[Usage, float]:
    """Counts and bytes averaged over the repeats; CPU and speed the best of them, the
    repeat least disturbed by whatever else shares the machine."""
    total = Usage()
    for used, _ in runs:
        total = total + used
    mean = total.scaled(1 / len(runs))
    mean.cpu_s = min(used.cpu_s for used, _ in runs)
    return mean, max(speed for _, speed in runs)


async def broker(
    url: str, cycles: int, conc: int, workers: int, idle_s: float, repeat: int
) -> Measured:
    b = _serving(url, workers, conc)
    keys = Keys(b.env["BROKER_KEY_PREFIX"])
    meter = aioredis.Redis.from_url(url)
    follower = Follower(url, keys.events)
    try:
        await follower.start()
        async with AsyncClient(b.url, timeout=60, retry=ONCE) as api:
            await _cycle(api, follower)  # warm-up: connections, scripts, the stream
            await asyncio.sleep(SETTLE_S)
            overhead = await reading_cost(meter)
            own, before = follower.own.scaled(1), await usage(meter)
            await asyncio.sleep(idle_s)
            idle = (await usage(meter)) - before - overhead - (follower.own - own)
            background = idle.scaled(1 / idle_s)

            runs = []
            for _ in range(repeat):
                own, calls, before = follower.own.scaled(1), len(follower.calls), await usage(meter)
                t0 = time.perf_counter()
                wall = await _split(cycles, conc, lambda: _cycle(api, follower))
                await asyncio.sleep(SETTLE_S)  # the finished runs' last bookkeeping
                window = time.perf_counter() - t0
                used = (await usage(meter)) - before - overhead - (follower.own - own)
                used -= background.scaled(window)
                # the follower's reads once more, without blocking: what they cost in CPU
                follower.calls = follower.calls[calls:]
                r0 = await usage(meter)
                await follower.replay()
                used.cpu_s -= ((await usage(meter)) - r0 - overhead).cpu_s
                runs.append((used.scaled(1 / cycles), cycles / wall))
    finally:
        await follower.stop()
        await meter.aclose()
        b.stop()
        delete_prefix(url, keys.prefix)
    name = f"broker, {workers} worker{'s' if workers > 1 else ''}"
    return Measured(name, *_best(runs), background)


def _family(key: str, prefix: str) -> str:
    if key.startswith("arq:"):
        return "arq jobs and results"
    rest = key.removeprefix(prefix + ":")
    head = rest.split(":", 1)[0]
    return {
        "cp": "checkpoints",
        "events": "event streams",
        "run": "run records",
        "interrupt": "interrupt records",
        "audit": "audit logs",
        "interrupts": "indexes",
        "runs": "indexes",
        "idem": "idempotency keys",
        "deadlines": "indexes",
    }.get(head, "other")


async def _families(r: aioredis.Redis, prefix: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for pattern in (f"{prefix}:*", "arq:*"):
        async for key in r.scan_iter(match=pattern, count=1000):
            name = key.decode()
            size = await r.memory_usage(key, samples=0) or 0
            out[_family(name, prefix)] = out.get(_family(name, prefix), 0) + size
    return out


async def memory(held: int, conc: int) -> tuple[float, float, dict[str, float]]:
    """Bytes per pending interrupt and per finished run, with where a finished run's go."""
    with own_redis() as url:
        b = _serving(url, 1, conc)
        prefix = b.env["BROKER_KEY_PREFIX"]
        r = aioredis.Redis.from_url(url)
        follower = Follower(url, Keys(prefix).events)
        sem = asyncio.Semaphore(conc)
        try:
            await follower.start()
            async with AsyncClient(b.url, timeout=60, retry=ONCE) as api:
                await _cycle(api, follower)
                await asyncio.sleep(1)
                m0, f0 = await used_memory(r), await _families(r, prefix)

                async def ask() -> tuple[str, str]:
                    async with sem:
                        run = await api.start_run("naming", INPUT)
                        ev = await follower.wait(run["run_id"], "run.interrupted")
                        return str(run["run_id"]), str(ev["data"]["interrupt_ids"][0])

                async def answer(run_id: str, iid: str) -> None:
                    async with sem:
                        await api.resolve(iid, True)
                        await follower.wait(run_id, "run.succeeded")

                waiting = await asyncio.gather(*(ask() for _ in range(held)))
                await asyncio.sleep(1)
                m1 = await used_memory(r)
                await asyncio.gather(*(answer(run_id, iid) for run_id, iid in waiting))
                await asyncio.sleep(1)
                m2, f2 = await used_memory(r), await _families(r, prefix)
        finally:
            await follower.stop()
            b.stop()
            await r.aclose()
    parts = {k: (f2.get(k, 0) - f0.get(k, 0)) / held for k in f2}
    return (m1 - m0) / held, (m2 - m0) / held, parts


def _top(u: Usage, k: int) -> list[tuple[str, float]]:
    return sorted(((c, n) for c, n in u.commands.items() if n >= 0.05), key=lambda x: -x[1])[:k]


def report(rows: list[Measured], mem: tuple[float, float, dict[str, float]], version: str) -> None:
    base = rows[0]
    ratio = "vs floor"
    print(f"\n{'per approval cycle':<30}" + "".join(f"{m.name:>20}" for m in rows) + f"{ratio:>10}")
    lines: list[tuple[str, Any, str]] = [
        ("Redis commands (incl. scripts)", lambda u: u.total, "{:.1f}"),
        ("bytes into Redis", lambda u: u.net_in, "{:,.0f}"),
        ("bytes out of Redis", lambda u: u.net_out, "{:,.0f}"),
        ("Redis CPU, µs", lambda u: u.cpu_s * 1e6, "{:,.0f}"),
    ]
    for label, get, fmt in lines:
        cells = "".join(f"{fmt.format(get(m.per_cycle)):>20}" for m in rows)
        print(f"{label:<30}{cells}{get(rows[1].per_cycle) / get(base.per_cycle):>9.1f}x")
    ceilings = [1 / m.per_cycle.cpu_s for m in rows]
    cells = "".join(f"{c:>20,.0f}" for c in ceilings)
    print(f"{'ceiling, cycles/s per core':<30}{cells}{ceilings[1] / ceilings[0]:>9.2f}x")
    net = [125e6 / max(m.per_cycle.net_in, m.per_cycle.net_out) for m in rows]
    print(f"{'ceiling at 1 Gbit/s, cycles/s':<30}" + "".join(f"{c:>20,.0f}" for c in net))
    wall = "".join(f"{m.cycles_per_s:>20.1f}" for m in rows)
    print(f"{'achieved here, cycles/s':<30}{wall}{rows[1].cycles_per_s / base.cycles_per_s:>9.2f}x")

    print("\nidle background (taken out above), per second:")
    for m in rows[1:]:
        bg = m.background or Usage()
        print(f"  {m.name:<20} {bg.total:6.1f} commands, {bg.cpu_s * 1e3:6.2f} ms Redis CPU")
    if len(rows) > 2:
        extra = rows[2].per_cycle - rows[1].per_cycle
        diff = ", ".join(f"{c} {n:+.1f}" for c, n in _top(extra, 6))
        print(f"\na second worker, per cycle: {extra.total:+.1f} commands ({diff}),")
        cpu = extra.cpu_s * 1e6
        print(f"  {cpu:+,.0f} µs Redis CPU: every worker hears each wake-up and tries for the job")

    print(f"\ntop commands per cycle{'':<14}{base.name:>20}{rows[1].name:>20}")
    for c, n in _top(rows[1].per_cycle, 14):
        print(f"  {c:<34}{base.per_cycle.commands.get(c, 0):>20.1f}{n:>20.1f}")

    pending, finished, parts = mem
    print(f"\nRedis memory (used_memory, redis-server {version} of its own)")
    print(f"  per pending interrupt (its run, checkpoints, indexes, events, job): {pending:,.0f} B")
    print(f"  per finished run (kept until retention removes it):            {finished:,.0f} B")
    spread = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(parts.items(), key=lambda x: -x[1]))
    print(f"    by key family (MEMORY USAGE): {spread}")
    for gib in (8, 64):
        print(f"  a {gib} GiB primary holds {gib * GIB / pending:,.0f} pending interrupts, or")
        print(f"    {gib * GIB / finished:,.0f} finished runs")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=150, help="cycles per window")
    parser.add_argument("-c", "--concurrency", type=int, default=16, help="cycles at once")
    parser.add_argument("--held", type=int, default=500, help="runs held for the memory figures")
    parser.add_argument("--idle", type=float, default=5.0, help="idle window, s")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=3, help="measured windows per row")
    args = parser.parse_args()
    os.environ.pop("OPENAI_API_KEY", None)  # the deterministic offline model, in every process
    with own_redis() as url:
        r = aioredis.Redis.from_url(url)
        version = (await r.info("server"))["redis_version"]
        await r.aclose()
        rows = [await floor(url, args.cycles, args.concurrency, args.repeat)]
        for n in args.workers:
            rows.append(await broker(url, args.cycles, args.concurrency, n, args.idle, args.repeat))
    mem = await memory(args.held, args.concurrency)
    print(f"redis-server {version}, {os.cpu_count()} cores shared by Redis, the API, the workers")
    print(f"and this driver; {args.cycles} cycles per window, {args.concurrency} at once,")
    print(f"{args.repeat} windows per row: counts and bytes their mean, CPU and speed their best")
    report(rows, mem, version)


if __name__ == "__main__":
    asyncio.run(main())
