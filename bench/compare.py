"""The whole cost picture of the hot path in one run: the broker against its in-process
floor and against ``langgraph dev``, on the same one-node approval graph (bench/approval.py).

A. the graph called in this process, with InMemorySaver and with the broker's saver
   (on a redis-server of this script's own): resume leg, cycles/s at 1, 4, 16 clients,
   process CPU per cycle (and the Redis server's, for the broker's saver);
B. the broker over HTTP (API and arq worker processes, the same redis-server): POST /runs
   → SSE /runs/{id}/events until run.interrupted → POST /interrupts/{id}/resolve → the
   same SSE until run.succeeded; 1 worker at 1, 4, 16 clients, 2 workers at 16;
C. ``langgraph dev`` on the same file (bench/_lgdev.py), the same client, 1, 4, 16 clients;
D. per cycle at 16 clients and 1 worker: CPU of each process (/proc), Redis commands and
   Redis CPU (INFO), the idle background measured first and taken out;
E. GET /healthz: the broker's API against a bare Starlette app under the same uvicorn;
F. N pending interrupts through the worker's recording path: fill rate, memory each, a
   page of 50 against /healthz;
G. one ``loop`` run answered hundreds of times: answer time and commands, first against
   last; GET /runs/{id} with 1 and with 1000 past interrupts.

The resume leg is from sending the answer to seeing the run end. One httpx.AsyncClient is
shared by all drivers of a row (B, C, E, F, G alike); B and G drive the broker through the
project's Python client (AsyncClient) on one tuned as the others are.

    uv run python -m bench.compare [--quick] [--skip A C …] [--profile DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis

from bench import _hot, _scale
from bench._common import pct
from bench._cycles import LIMITS, TIMEOUT_S, Row
from bench._meter import own_redis
from bench._procs import print_profile
from bench._report import print_costs, print_rows, print_summary, targets, window

SECTIONS = "ABCDEFG"
DEFAULT = _hot.Plan(
    floor={1: 300, 4: 600, 16: 1200},
    broker={1: 100, 4: 200, 16: 400},
    peer={1: 20, 4: 60, 16: 240},
    idle_s=5.0,
    healthz=2000,
    gets=200,
    pending=100_000,
    questions=500,
    past=1000,
)
QUICK = _hot.Plan(
    floor={1: 60, 4: 120, 16: 240},
    broker={1: 30, 4: 60, 16: 120},
    peer={1: 5, 4: 20, 16: 64},
    idle_s=2.0,
    healthz=300,
    gets=50,
    pending=10_000,
    questions=100,
    past=100,
)


def _ms(samples: list[float], p: float) -> float:
    return pct(samples, p) * 1000


async def run(args: argparse.Namespace) -> dict[str, Any]:
    plan = QUICK if args.quick else DEFAULT
    plan.pending = args.pending or plan.pending
    skip = set(args.skip)
    got: dict[str, Any] = {"plan": plan}
    async with httpx.AsyncClient(timeout=TIMEOUT_S, limits=LIMITS) as client:
        with own_redis() as url:
            r = aioredis.Redis.from_url(url)
            got["redis"] = (await r.info("server"))["redis_version"]
            await r.aclose()
            if "A" not in skip:
                _step("A: in-process floor")
                got["floor"] = await _hot.floor_rows(url, plan)
            if not {"B", "D", "E", "G"} <= skip:
                _step("B/D: broker, 1 worker")
                b = _hot.start_broker(url, 1, max(plan.broker))
                try:
                    if "B" not in skip:
                        rows, costs = await _hot.broker_rows(
                            b,
                            plan,
                            list(plan.broker),
                            name="broker, 1 worker",
                            costs_at=None if "D" in skip else max(plan.broker),
                            profile=args.profile,
                        )
                        got["broker"], got["costs"] = rows, costs
                    if "E" not in skip:
                        _step("E: /healthz against bare Starlette")
                        got["healthz"] = await _scale.healthz_vs_bare(client, b.url, plan.healthz)
                    if "G" not in skip:
                        _step("G: no growth")
                        got["growth"] = await _scale.no_growth(
                            b, client, plan.questions, plan.past, plan.gets
                        )
                finally:
                    b.stop()
            if "B" not in skip:
                _step("B: broker, 2 workers")
                b = _hot.start_broker(url, 2, max(plan.broker))
                top = max(plan.broker)
                try:
                    rows, _ = await _hot.broker_rows(b, plan, [top], name="broker, 2 workers")
                    got["broker2"] = rows
                finally:
                    b.stop()
        if "C" not in skip:
            _step("C: langgraph dev")
            got["peer"] = await _hot.peer_rows(client, plan, args.peer_jobs)
        if "F" not in skip:
            _step(f"F: inbox with {plan.pending:,} pending")
            got["inbox"] = await _scale.inbox_at_scale(client, plan.pending, plan.gets)
    return got


def _step(what: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {what}", flush=True)


def report(got: dict[str, Any], args: argparse.Namespace, took_s: float) -> None:
    plan = got["plan"]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n{os.cpu_count()} cores shared by Redis, the servers and this driver (load {load});")
    print(
        f"redis-server {got.get('redis')} of this script's own, Python {platform.python_version()};"
    )
    print("one httpx.AsyncClient shared by the drivers of each row.")
    rows: list[Row] = got.get("floor", []) + got.get("broker", []) + got.get("broker2", [])
    peer_rows, versions, peer_cpu = got.get("peer", ([], "skipped", None))
    rows += peer_rows
    if "peer" in got:
        print(f"langgraph dev: {versions}; --n-jobs-per-worker {args.peer_jobs}")
        if not peer_rows:
            print(f"  no langgraph dev rows: {versions}")
    if rows:
        print_rows(rows, peer_cpu)
    if got.get("costs"):
        print_costs(got["costs"], max(plan.broker))
    if "healthz" in got:
        h = got["healthz"]
        print(f"\nE. GET /healthz, sequential, {plan.healthz} each, interleaved in blocks of 100")
        print(f"  {'server':<40}{'p50 ms':>9}{'p99 ms':>9}")
        for name, label in (("broker", "broker API (FastAPI app)"), ("bare", "bare Starlette")):
            print(f"  {label:<40}{_ms(h[name], 50):>9.3f}{_ms(h[name], 99):>9.3f}")
        print(f"  broker / bare, p50: {_ms(h['broker'], 50) / _ms(h['bare'], 50):.2f}x")
    if "inbox" in got:
        i = got["inbox"]
        print(f"\nF. inbox: {i.pending:,} pending interrupts through the recording path")
        print(f"  filled at {i.rate:,.0f} pending/s ({i.fill_s:.1f} s)")
        print(f"  Redis used_memory per pending interrupt: {i.bytes_per:,.0f} B")
        print("  (its run, interrupt, indexes, events; no checkpoints: no graph ran)")
        page, hz = _ms(i.samples["page"], 50), _ms(i.samples["healthz"], 50)
        print(f"  GET /interrupts?limit=50 p50 {page:.2f} ms, GET /healthz p50 {hz:.2f} ms")
        print(f"  page / healthz: {page / hz:.2f}x ({plan.gets} each, interleaved)")
    if "growth" in got:
        _print_growth(got["growth"])
    if args.profile and got.get("costs"):
        print(f"\nProfiles of an extra 16-client window (py-spy, 200 Hz) in {args.profile}:")
        for name in ("api", "worker"):
            print_profile(name, args.profile / f"{name}.txt")
    print_summary(targets(got))
    print(f"\ntotal {took_s / 60:.1f} min")


def _print_growth(g: _scale.Growth) -> None:
    n, q, w = max(g.questions, g.past), g.questions, _scale.WINDOW
    print(f"\nG. no growth: a loop run answered {n} times (resolve → next interrupt on SSE);")
    print(f"   a young run's answers #1-#{w} interleaved with its #{q - w + 1}-#{q}")
    print(f"  {'answers (medians)':<34}{'ms':>8}{'commands':>10}")
    rows = [("old run", g.old, w), ("young run (interleaved)", g.young, w), ("old run", g.old, q)]
    if g.past > q:
        rows.append(("old run", g.old, n))
    for label, run, end in rows:
        first = max(1, end - w + 1)
        at = end if run is g.old else w
        t, c = window(run.times, at) * 1000, window(run.commands, at)
        print(f"  {f'{label} #{first}-#{end}':<34}{t:>8.2f}{c:>10.0f}")
    one, past = _ms(g.get_one, 50), _ms(g.get_past, 50)
    print(f"  GET /runs/{{id}} p50, interleaved: 1 past interrupt {one:.2f} ms,")
    print(f"    {n} past {past:.2f} ms ({past / one:.2f}x)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer cycles, 10k pending")
    parser.add_argument("--skip", nargs="*", default=[], choices=list(SECTIONS))
    parser.add_argument("--profile", type=Path, help="py-spy the API and the worker into DIR")
    parser.add_argument("--pending", type=int, help="pending interrupts for F")
    parser.add_argument("--peer-jobs", type=int, default=16, help="langgraph dev's jobs")
    args = parser.parse_args()
    os.environ.pop("OPENAI_API_KEY", None)
    t0 = time.perf_counter()
    got = await run(args)
    report(got, args, time.perf_counter() - t0)


if __name__ == "__main__":
    asyncio.run(main())
