"""Retention end to end (docs/design.md, "Retention"; invariant 9): real API and worker
processes, and a soak of 5,000 runs after which memory is back where the pending work
alone had it, on a redis-server of the test's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aioredis

from broker.core.codec import now_ms
from broker.core.keys import Keys
from broker.core.records import RunStatus
from broker.core.settings import Settings
from broker.core.store import Store
from tests.flow import answer, next_interrupt, start, wait_status
from tests.harness import Broker, free_port, wait_until
from tests.stored import raised, waiting
from tests.test_retention import HOUR_S, _answer, _resume
from worker import retention

# -- end to end: real API and worker processes ---------------------------------------

RETAIN_S = 2


@pytest.fixture(scope="module")
def retaining(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    b = Broker(
        redis_url,
        f"ibt{uuid.uuid4().hex[:10]}",
        tmp_path_factory.mktemp("retention"),
        BROKER_RETENTION_S=str(RETAIN_S),
        BROKER_CHECKPOINT_TTL_S=str(RETAIN_S),
        BROKER_TOMBSTONE_S=str(HOUR_S),
        BROKER_RETENTION_SWEEP_INTERVAL_S="0.2",
    )
    with b.serving():
        yield b


@pytest.fixture
def api(retaining: Broker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=retaining.url, timeout=30) as c:
        yield c


def _naming_run(api: httpx.Client) -> tuple[dict[str, Any], list[str]]:
    """A naming run answered to the end; (the run as it ended, its interrupt ids)."""
    run = start(api, "naming", {"messages": [{"role": "user", "content": "hi"}]})
    first = next_interrupt(api, run["run_id"])
    answer(api, first["id"], True)
    second = next_interrupt(api, run["run_id"], after=first["id"])
    answer(api, second["id"], "Ada")
    done = wait_status(api, run["run_id"], "succeeded", "failed")
    return done, [first["id"], second["id"]]


def _untimed(redis_url: str, prefix: str, *needles: str) -> list[str]:
    """Keys under ``prefix`` naming any of ``needles`` (ids) that have no TTL."""
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return [
            k
            for k in r.scan_iter(match=f"{prefix}:*", count=1000)
            if any(n in k or n.replace(":", "%3A") in k for n in needles)
            and r.pttl(k) == -1
            # the indexes by thread: the sweep's part
            and not k.startswith((f"{prefix}:runs:", f"{prefix}:interrupts:"))
        ]
    finally:
        r.close()


@pytest.mark.slow
def test_a_finished_run_expires_and_then_reads_say_so(
    api: httpx.Client, retaining: Broker, redis_url: str
) -> None:
    done, ids = _naming_run(api)
    assert done["status"] == "succeeded", done
    p = retaining.env["BROKER_KEY_PREFIX"]
    # the run, its interrupts, their audit logs, its events and its thread's checkpoints
    wait_until(
        lambda: not _untimed(redis_url, p, done["run_id"], done["thread_id"], *ids),
        "every key of the finished run to have a TTL",
    )
    wait_until(lambda: api.get(f"/runs/{done['run_id']}").status_code == 410, "the run to expire")
    gone = api.get(f"/runs/{done['run_id']}")
    assert gone.json()["error"]["code"] == "expired_record"
    for path in (f"/interrupts/{ids[0]}", f"/interrupts/{ids[1]}/audit"):
        r = api.get(path)
        assert (r.status_code, r.json()["error"]["code"]) == (410, "expired_record"), r.text
    late = api.post(f"/interrupts/{ids[0]}/resolve", json={"value": True})
    assert (late.status_code, late.json()["error"]["code"]) == (410, "expired_record")
    unknown = api.get(f"/runs/{uuid.uuid4()}")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "run_not_found")
    unknown = api.get(f"/interrupts/{uuid.uuid4()}")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "interrupt_not_found")

    # the worker's sweep drops the index entries: no listing names the run any more
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        k = Keys(p)
        wait_until(
            lambda: (
                r.zscore(k.runs, done["run_id"]) is None
                and r.zscore(k.interrupts_by_status("resolved"), ids[0]) is None
            ),
            "the sweep to forget the run",
        )
        assert r.zscore(k.runs_by_thread(done["thread_id"]), done["run_id"]) is None
    finally:
        r.close()


@pytest.mark.slow
def test_a_run_cancelled_over_the_api_gives_its_checkpoints_their_ttl(
    api: httpx.Client, retaining: Broker, redis_url: str
) -> None:
    run = start(api, "naming", {"messages": [{"role": "user", "content": "hi"}]})
    first = next_interrupt(api, run["run_id"])
    p = retaining.env["BROKER_KEY_PREFIX"]
    thread = run["thread_id"].replace(":", "%3A")
    assert any(":cp:" in k for k in _untimed(redis_url, p, thread))  # pending: kept
    r = api.post(f"/runs/{run['run_id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text
    assert _untimed(redis_url, p, run["run_id"], thread, first["id"]) == []
    wait_until(
        lambda: api.get(f"/interrupts/{first['id']}").status_code == 410,
        "the cancelled run's interrupt to expire",
    )


# -- the soak: memory comes back to what the pending work needs -----------------------

SOAK_RUNS = 5000
PENDING_RUNS = 1000


@contextlib.contextmanager
def _private_redis(tmp: Path) -> Iterator[str]:
    """A redis-server of the test's own (so INFO memory measures only this test)."""
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
        cwd=tmp,
        stdout=subprocess.DEVNULL,
    )
    probe = redis.Redis(port=port)
    try:

        def up() -> bool:
            with contextlib.suppress(redis.ConnectionError):
                return bool(probe.ping())
            return False

        wait_until(up, "redis-server to start")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        probe.close()
        server.terminate()
        server.wait(10)


async def _lifecycle(store: Store, i: int) -> None:
    """One run from start to end, as a worker and the API would take it."""
    run = await store.create_run("a", None, {"messages": [{"role": "user", "content": "hi"}]}, {})
    begun = await _resume(store, run.id, "job-1")
    await store.emit(begun.run, "message.delta", delta="hello " * 10)
    kind = i % 4
    if kind == 1:
        await store.record_finish(run.id, RunStatus.FAILED, error={"m": "boom"}, applied=[])
        return
    extra: dict[str, Any] = {"expires_at_ms": 1, "on_expire": "fail"} if kind == 3 else {}
    values = [{"type": "approval", "content": f"ok {i}?"}, {"type": "ask"}][: 1 + (kind == 2)]
    ids = await store.record_interrupts(
        begun.run, [raised(begun.run, v, **extra) for v in values], [], job_id="job-1"
    )
    if kind == 0:
        assert await _answer(store, ids[0], True, idem=f"k{i}") == "ok"
        await _resume(store, run.id, "job-2")
        await store.record_finish(run.id, RunStatus.SUCCEEDED, output={"n": i}, applied=ids)
        await store.append_audit(ids[0], {"actor": "late", "outcome": "already_resolved"})
    elif kind == 2:
        await store.stop_run(run.id, RunStatus.CANCELLED)
    else:
        outcome, _, _ = await store.expire_script(
            ids[0],
            resolution=None,
            end_status=RunStatus.FAILED,
            event={},
            audit_entry={"actor": "expiry"},
            error={"m": "late"},
            now=now_ms(),
        )
        assert outcome == "ok"


async def _pending_work(store: Store, n: int) -> None:
    """Runs that must all stay: waiting on a question, answered and not yet applied,
    queued, running."""
    for i in range(n):
        kind = i % 5
        if kind == 0:
            await store.create_run("a", None, {}, {})
        elif kind == 1:
            await _resume(store, (await store.create_run("a", None, {}, {})).id, "j")
        else:
            _, [iid] = await waiting(store, "a", {"type": "approval", "content": f"q{i}"})
            if kind == 2:
                assert await _answer(store, iid, True) == "ok"


def _footprint(r: redis.Redis, prefixes: tuple[str, ...]) -> int:
    """used_memory without the global event streams (capped, not per run) and arq's own
    job keys (their results are kept an hour by arq)."""
    used = int(r.info("memory")["used_memory"])
    fixed = [f"{p}:events" for p in prefixes] + list(r.scan_iter(match="arq:*", count=1000))
    return used - sum(int(r.memory_usage(k, samples=0) or 0) for k in fixed)


def _contents(r: redis.Redis, keys: set[bytes]) -> dict[bytes, Any]:
    """What each key holds (counters and the global stream left out: they move on)."""
    read = {
        b"hash": r.hgetall,
        b"zset": lambda k: r.zrange(k, 0, -1, withscores=True),
        b"string": r.get,
        b"list": lambda k: r.lrange(k, 0, -1),
        b"stream": lambda k: r.xrange(k),
        b"set": r.smembers,
    }
    skip = (b":seq", b":interrupts:version", b":events")
    return {k: read[r.type(k)](k) for k in keys if not k.endswith(skip)}


def _keyset(r: redis.Redis, prefix: str) -> set[bytes]:
    return set(r.scan_iter(match=f"{prefix}:*", count=5000))  # SCAN also expires due keys


@pytest.mark.slow
async def test_a_soak_leaves_memory_at_what_the_pending_work_needs(tmp_path: Path) -> None:
    """5,000 runs through the store (and a few over the API) after a baseline of only
    pending work: once their retention passed, memory is back at the baseline, but for
    table sizes the server keeps after a peak."""
    short = {
        "BROKER_RETENTION_S": "1",
        "BROKER_TOMBSTONE_S": "1",
        "BROKER_CHECKPOINT_TTL_S": "1",
        "BROKER_RETENTION_SWEEP_INTERVAL_S": "0.2",
        "BROKER_EVENTS_MAXLEN_GLOBAL": "1000",
        # the runs started over the API carry an Idempotency-Key, as the client sends
        # one with every start: its kept response is one more window to wait out
        "BROKER_IDEMPOTENCY_TTL_S": "1",
    }
    with _private_redis(tmp_path) as url:
        e2e = Broker(url, "e2e", tmp_path, **short)
        client = aioredis.Redis.from_url(url, decode_responses=True)
        sync = redis.Redis.from_url(url)
        settings = Settings(
            redis_url=url,
            key_prefix="soak",
            retention_s=1,
            tombstone_s=1,
            events_maxlen_global=1000,
        )
        store = Store(client, settings)
        try:
            with e2e.serving(), httpx.Client(base_url=e2e.url, timeout=30) as api:
                # warm up: every script loaded, every process's caches filled
                _naming_run(api)
                _cancel_over_api(api)
                for i in range(8):
                    await _lifecycle(store, i)
                await _drain(store, sync, ("soak", "e2e"), {})
                await _pending_work(store, PENDING_RUNS)
                kept = {p: _keyset(sync, p) for p in ("soak", "e2e")}
                pending_values = _contents(sync, kept["soak"])
                baseline = _footprint(sync, ("soak", "e2e"))

                sem = asyncio.Semaphore(50)

                async def one(i: int) -> None:
                    async with sem:
                        await _lifecycle(store, i)

                await asyncio.gather(*(one(i) for i in range(SOAK_RUNS)))
                ended = [_naming_run(api)[0]["run_id"] for _ in range(3)]
                _cancel_over_api(api)
                # every one was retained in the step that ended it, none forgotten yet
                assert sync.zcard("soak:retention:ended") == SOAK_RUNS

                await _drain(store, sync, ("soak", "e2e"), kept)
                for run_id in ended:
                    assert api.get(f"/runs/{run_id}").status_code in (404, 410)
                # pending work is untouched, key for key
                assert _contents(sync, kept["soak"]) == pending_values

                def settled() -> bool:
                    return abs(_footprint(sync, ("soak", "e2e")) - baseline) <= 0.02 * baseline

                # the server shrinks freed hash tables in its cron: give it time, then compare
                with contextlib.suppress(AssertionError):
                    wait_until(settled, "memory to settle", deadline_s=30)
                after = _footprint(sync, ("soak", "e2e"))
                print(f"memory without the capped streams: {baseline} before, {after} after")
                # What is left is the server's own: hash tables sized for the soak's peak,
                # client buffers. It stays under 200 bytes per ended run, a few percent of
                # what each held while retained; a key left behind per run would not.
                assert after - baseline <= 200 * SOAK_RUNS, (baseline, after)
                assert after >= 0.9 * baseline, (baseline, after)  # pending work all kept
        finally:
            await client.aclose()
            sync.close()


def _cancel_over_api(api: httpx.Client) -> None:
    run = start(api, "naming", {"messages": [{"role": "user", "content": "hi"}]})
    next_interrupt(api, run["run_id"])
    assert api.post(f"/runs/{run['run_id']}/cancel").status_code == 200


async def _drain(
    store: Store,
    r: redis.Redis,
    prefixes: tuple[str, ...],
    kept: dict[str, set[bytes]],
) -> None:
    """Sweeps (as the worker's loop does) until each prefix holds only ``kept`` keys
    besides its shared ones, and no ended run is left to forget."""
    # arq's own job keys expire by arq's keep_result (an hour), not with the run
    shared = (b":seq", b":interrupts:version", b":events", b":queue", b":lock:", b":workers")
    shared += (b":arq:",)

    def leftover(p: str) -> set[bytes]:
        return {
            k
            for k in _keyset(r, p) - kept.get(p, set())
            if not any(s in k for s in shared) and not k.endswith(b":cp:threads")
        }

    end = time.monotonic() + 60
    while time.monotonic() < end:
        await retention.sweep_once(store)
        left = {p: leftover(p) for p in prefixes}
        if not any(left.values()) and not any(r.zcard(f"{p}:retention:ended") for p in prefixes):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"left behind: { {p: sorted(v)[:10] for p, v in left.items()} }")
