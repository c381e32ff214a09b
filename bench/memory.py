"""Redis memory per pending interrupt and per finished run, and what retention leaves.

Starts a private redis-server (``--save "" --appendonly no``, free loopback port), the API
and one worker (real processes, the offline model), and drives ``naming`` runs over HTTP
through the project's client (tests/flow.py), which keys every start and answer:
N runs stopped at their first question (pending), then answered to the end (finished),
then left until their retention passed (tombstones only), then until the tombstones
expired. At each stage it prints, per run: the keys that name the run, its thread or its
interrupts and their ``MEMORY USAGE`` (SAMPLES 0: exact), and the growth of
``INFO memory`` ``used_memory`` since before the runs (which also counts index entries and
the global event stream, capped by ``BROKER_EVENTS_MAXLEN_GLOBAL``). Retention and the
checkpoint TTL are shortened to ``--retention`` seconds, tombstones to ``--tombstone``,
so the stages come quickly (each must exceed the time the runs take to finish); they
change when keys go, not their size.

    uv run python -m bench.memory [--runs 50] [--retention 30] [--tombstone 30]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import redis

from tests.flow import answer, next_interrupt, start, wait_status
from tests.harness import Broker, free_port, wait_until

KINDS = (
    (":gone:", "tombstones"),
    (":idem:", "answers' idempotency keys"),
    (":cp:", "checkpoints"),
    (":events:runlog:", "run event log"),
    (":audit:", "audit logs"),
    (":interrupt:", "interrupt hashes"),
    (":interrupts", "run's interrupt list"),
    (":run:", "run hash"),
)


@contextlib.contextmanager
def private_redis() -> Iterator[redis.Redis]:
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        server = subprocess.Popen(
            ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
            cwd=d,
            stdout=subprocess.DEVNULL,
        )
        r = redis.Redis(port=port, decode_responses=True)
        try:
            wait_until(lambda: _ping(r), "redis-server to start")
            yield r
        finally:
            r.close()
            server.terminate()
            server.wait(10)


def _ping(r: redis.Redis) -> bool:
    with contextlib.suppress(redis.ConnectionError):
        return bool(r.ping())
    return False


def owned(r: redis.Redis, prefix: str, runs: list[dict[str, Any]]) -> dict[str, int]:
    """MEMORY USAGE of every key that names one of the runs, its thread or interrupts."""
    needles = [n for run in runs for n in run["ids"]]
    out = {}
    for key in r.scan_iter(match=f"{prefix}:*", count=1000):
        if key.startswith(f"{prefix}:arq:"):
            continue  # arq's job keys: shared, below
        if any(n in key for n in needles):
            out[key] = int(r.memory_usage(key, samples=0) or 0)
    return out


def used(r: redis.Redis) -> int:
    return int(r.info("memory")["used_memory"])


def shared(r: redis.Redis, prefix: str) -> dict[str, int]:
    """MEMORY USAGE of what no one run owns but runs make grow: the global event stream
    (capped), arq's job keys (results are kept an hour) and the kept responses of keyed
    starts (``BROKER_IDEMPOTENCY_TTL_S``; their keys name no run)."""
    arq = [k for k in r.scan_iter(match=f"{prefix}:arq:*", count=1000)]
    starts = [k for k in r.scan_iter(match=f"{prefix}:idem:runs:*", count=1000)]
    return {
        "global event stream": int(r.memory_usage(f"{prefix}:events", samples=0) or 0),
        "arq job keys": sum(int(r.memory_usage(k, samples=0) or 0) for k in arq),
        "keyed starts": sum(int(r.memory_usage(k, samples=0) or 0) for k in starts),
    }


def kind(key: str) -> str:
    return next((name for mark, name in KINDS if mark in key), "other")


def naming(api: httpx.Client) -> dict[str, Any]:
    run = start(api, "naming", {"messages": [{"role": "user", "content": "hi"}]})
    first = next_interrupt(api, run["run_id"])
    return {**run, "first": first["id"], "ids": [run["run_id"], run["thread_id"], first["id"]]}


def finish(api: httpx.Client, run: dict[str, Any]) -> None:
    answer(api, run["first"], True)
    second = next_interrupt(api, run["run_id"], after=run["first"])
    run["ids"].append(second["id"])
    answer(api, second["id"], "Ada")
    assert wait_status(api, run["run_id"], "succeeded")["status"] == "succeeded"


def settle(r: redis.Redis, prefix: str, runs: list[dict[str, Any]], want: int) -> None:
    """Waits until ``want`` keys of the runs are left (SCAN also expires what is due)."""
    try:
        wait_until(lambda: len(owned(r, prefix, runs)) == want, f"{want} keys", deadline_s=300)
    except AssertionError:
        left = owned(r, prefix, runs)
        raise AssertionError(f"{len(left)} keys left: {sorted(left)[:20]}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--retention", type=int, default=30)
    parser.add_argument("--tombstone", type=int, default=30)
    args = parser.parse_args()
    n, ttl = args.runs, str(args.retention)
    rows: list[tuple[str, dict[str, int], int, dict[str, int]]] = []
    with private_redis() as r:
        port = r.connection_pool.connection_kwargs["port"]
        url = f"redis://127.0.0.1:{port}/0"
        prefix = "bench"
        b = Broker(
            url,
            prefix,
            Path(tempfile.mkdtemp()),
            BROKER_RETENTION_S=ttl,
            BROKER_CHECKPOINT_TTL_S=ttl,
            BROKER_TOMBSTONE_S=str(args.tombstone),
            BROKER_RETENTION_SWEEP_INTERVAL_S="0.5",
        )
        with b.serving(), httpx.Client(base_url=b.url, timeout=30) as api:
            warm = naming(api)  # loads the scripts, fills the worker's caches
            finish(api, warm)
            settle(r, prefix, [warm], 0)
            base, base_shared = used(r), shared(r, prefix)
            runs = [naming(api) for _ in range(n)]
            rows.append(
                ("pending (first question)", owned(r, prefix, runs), used(r), shared(r, prefix))
            )
            for run in runs:
                finish(api, run)
            time.sleep(0.5)  # the worker's checkpoint TTL follows the run's end
            rows.append(
                ("finished, within retention", owned(r, prefix, runs), used(r), shared(r, prefix))
            )
            wait_until(
                lambda: not any(":run:" in k and ":gone:" not in k for k in owned(r, prefix, runs)),
                "the runs to expire",
                deadline_s=120,
            )
            settle(r, prefix, runs, len(runs) * 3)  # a tombstone per run and interrupt
            rows.append(
                (
                    "retention passed (tombstones)",
                    owned(r, prefix, runs),
                    used(r),
                    shared(r, prefix),
                )
            )
            settle(r, prefix, runs, 0)
            wait_until(lambda: r.zcard(f"{prefix}:retention:ended") == 0, "the sweep")
            rows.append(("tombstones expired", owned(r, prefix, runs), used(r), shared(r, prefix)))
        version = r.info()["redis_version"]
    print(f"naming runs x {n}, redis-server {version} (private), API + 1 worker, offline model")
    print(f"{'stage':<32} {'keys/run':>9} {'MEMORY USAGE B/run':>19} {'used_memory B/run':>18}")
    for stage, keys, mem, common in rows:
        total = sum(keys.values())
        print(f"{stage:<32} {len(keys) / n:>9.1f} {total / n:>19,.0f} {(mem - base) / n:>18,.0f}")
        by_kind: dict[str, int] = collections.Counter()
        for key, size in keys.items():
            by_kind[kind(key)] += size
        for name, size in sorted(by_kind.items(), key=lambda kv: -kv[1]):
            print(f"    {name:<28} {size / n:>19,.0f}")
        for name, size in common.items():
            grown = (size - base_shared[name]) / n
            print(f"    {'(' + name + ', growth)':<28} {grown:>19,.0f}")


if __name__ == "__main__":
    main()
