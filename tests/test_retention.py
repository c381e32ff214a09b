"""Retention (docs/design.md, "Retention"; invariant 9): the step that ends a run gives
everything the run owns a TTL; pending work never gets one; the sweep drops what expired
runs leave in the indexes and backfills runs that ended before retention; reads of expired
records say so (410 ``expired_record``), unknown ids stay 404; and a soak of 5,000 runs
leaves memory where the pending work alone had it.

Store-level tests run on real Redis and on fakeredis, as tests/test_store.py does; the
end-to-end ones use real API and worker processes, the soak a redis-server of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import fakeredis
import httpx
import pytest
import redis
import redis.asyncio as aioredis

from broker.api import visibility
from broker.core import auth, errors
from broker.core.codec import now_ms
from broker.core.keys import Keys
from broker.core.records import RunStatus
from broker.core.settings import Settings
from broker.core.store import Attempt, Store
from tests.flow import answer, next_interrupt, start, wait_status
from tests.harness import Broker, free_port, wait_until
from tests.stored import raised, waiting
from worker import retention

HOUR_S = 3600


def _client(kind: str, redis_url: str) -> aioredis.Redis:
    if kind == "redis":
        return aioredis.Redis.from_url(redis_url, decode_responses=True)
    return fakeredis.FakeAsyncRedis(decode_responses=True)


@pytest.fixture(params=["redis", "fakeredis"])
async def client(request: pytest.FixtureRequest, redis_url: str) -> AsyncIterator[aioredis.Redis]:
    c = _client(request.param, redis_url)
    yield c
    await c.aclose()


def _store(client: aioredis.Redis, settings: Settings, **change: Any) -> Store:
    return Store(client, settings.model_copy(update=change))


async def _answer(store: Store, iid: str, value: Any, idem: str | None = None) -> str:
    resolution = {"value": value, "resolved_by": "u", "channel": "rest", "key_id": None}
    res = await store.resolve_script(
        iid,
        resolution=resolution,
        event={"interrupt_id": iid},
        response={"id": iid},
        idempotency=(idem, "digest") if idem else None,
        audit_entry={"actor": "u"},
        single_use=None,
    )
    return str(res[0])


async def _resume(store: Store, run_id: str, job: str) -> Attempt:
    begun = await store.begin_attempt(run_id, "", job)
    assert isinstance(begun, Attempt), begun
    return begun


async def _ttls(store: Store) -> dict[str, int]:
    """PTTL of every key under the store's prefix."""
    keys = [k async for k in store.r.scan_iter(match=f"{store.keys.prefix}:*", count=1000)]
    return {k: await store.r.pttl(k) for k in keys}


def _shared(store: Store, key: str) -> bool:
    """Keys that are not any one run's: indexes, counters, the global stream."""
    k = store.keys
    p = k.prefix
    return (
        key.startswith((f"{p}:interrupts:", f"{p}:runs"))
        or key in (k.seq, k.interrupts_version, k.events, k.deadlines, k.ended_runs)
        or key.startswith(f"{p}:idem:")  # an idempotency key has a TTL of its own
    )


# -- how a run ends: each path below ends one run that has an answered interrupt (with
# an idempotency key and audit entries) and a pending one the end closes --------------


async def _finished(store: Store, run_id: str, job: str, ids: list[str]) -> None:
    await store.record_finish(run_id, RunStatus.SUCCEEDED, output={"ok": 1}, applied=ids)


async def _failed(store: Store, run_id: str, job: str, ids: list[str]) -> None:
    await store.record_finish(run_id, RunStatus.FAILED, error={"m": "x"}, applied=ids)


async def _cancelled(store: Store, run_id: str, job: str, ids: list[str]) -> None:
    await store.stop_run(run_id, RunStatus.CANCELLED)


async def _run_with_history(store: Store, agent: str = "a") -> tuple[str, list[str]]:
    """A running run with one interrupt answered (idempotency key, audit entries) and
    applied, and one pending; (run id, [answered id, pending id])."""
    run, [first, second] = await waiting(store, agent, {"type": "approval"}, {"type": "ask"})
    assert await _answer(store, first, True, idem="k1") == "ok"
    await store.append_audit(second, {"actor": "someone", "outcome": "invalid_answer"})
    await _resume(store, run.id, "job-2")
    return run.id, [first, second]


@pytest.mark.parametrize("end", [_finished, _failed, _cancelled])
async def test_the_step_that_ends_a_run_gives_everything_it_owns_a_ttl(
    client: aioredis.Redis,
    settings: Settings,
    end: Callable[[Store, str, str, list[str]], Awaitable[None]],
) -> None:
    store = _store(client, settings, retention_s=HOUR_S, tombstone_s=2 * HOUR_S)
    run_id, ids = await _run_with_history(store)
    before = await _ttls(store)
    assert [k for k, t in before.items() if t != -1 and not _shared(store, k)] == []

    await end(store, run_id, "job-2", ids[:1])

    after = await _ttls(store)
    k = store.keys
    owned = {k: t for k, t in after.items() if not _shared(store, k)}
    expected = {
        k.run(run_id),
        k.run_interrupts(run_id),
        k.run_events(run_id),
        *(k.interrupt(i) for i in ids),
        *(k.audit(i) for i in ids),
        k.run_tombstone(run_id),
        *(k.interrupt_tombstone(i) for i in ids),
    }
    assert set(owned) == expected
    for key, ttl in owned.items():
        limit = (3 if "gone" in key else 1) * HOUR_S * 1000
        assert 0 < ttl <= limit, (key, ttl)
    # the tombstones outlive the records by the tombstone period
    assert owned[k.run_tombstone(run_id)] > HOUR_S * 1000
    # the winning answer's idempotency key (a day of its own) goes with its interrupt
    assert 0 < after[k.idempotency(ids[0], "k1")] <= HOUR_S * 1000
    # the sweep's work list holds the run until its records expire
    assert await store.r.zcard(k.ended_runs) == 1
    assert await store.r.zscore(k.runs, run_id) is not None


async def test_expiry_that_fails_the_run_gives_it_a_ttl_in_the_same_step(
    client: aioredis.Redis, settings: Settings
) -> None:
    store = _store(client, settings, retention_s=HOUR_S)
    run, [iid] = await waiting(store, "a", {"type": "ask"}, expires_at_ms=1, on_expire="fail")
    outcome, _, _ = await store.expire_script(
        iid,
        resolution=None,
        end_status=RunStatus.FAILED,
        event={},
        audit_entry={"actor": "expiry"},
        error={"m": "late"},
        now=2,
    )
    assert outcome == "ok"
    ttls = await _ttls(store)
    for key in (store.keys.run(run.id), store.keys.interrupt(iid), store.keys.audit(iid)):
        assert ttls[key] > 0, key


async def test_pending_work_never_gets_a_ttl(client: aioredis.Redis, settings: Settings) -> None:
    store = _store(client, settings, retention_s=1, tombstone_s=1)
    queued = await store.create_run("a", None, {}, {})
    running = await store.create_run("a", None, {}, {})
    await _resume(store, running.id, "job-1")
    interrupted, _ = await waiting(store, "a", {"type": "approval"})
    answered, [done] = await waiting(store, "a", {"type": "approval"})
    assert await _answer(store, done, True, idem="k") == "ok"  # answered, not yet applied
    resumed, [defaulted] = await waiting(
        store, "a", {"type": "ask"}, expires_at_ms=1, on_expire="resume", expiry_default="x"
    )
    outcome, _, _ = await store.expire_script(
        defaulted,
        resolution={"value": "x", "channel": "expiry"},
        end_status=None,
        event={},
        audit_entry={"actor": "expiry"},
        now=2,
    )
    assert outcome == "ok"  # expired with its default: an answer the run has yet to apply
    before = await _ttls(store)

    await asyncio.sleep(1.2)  # longer than the retention
    assert await retention.sweep_once(store) == 0

    after = await _ttls(store)
    assert after.keys() == before.keys()
    assert [k for k, t in after.items() if t != -1 and not _shared(store, k)] == []
    statuses = {
        queued.id: RunStatus.QUEUED,
        running.id: RunStatus.RUNNING,
        interrupted.id: RunStatus.INTERRUPTED,
        answered.id: RunStatus.INTERRUPTED,
        resumed.id: RunStatus.INTERRUPTED,
    }
    for run_id, status in statuses.items():
        assert await store.r.zscore(store.keys.runs, run_id) is not None
        assert (await store.run(run_id)).status == status
    assert (await store.interrupt(done)).status == "resolved"


async def test_the_sweep_forgets_expired_runs_and_leaves_tombstones(
    client: aioredis.Redis, settings: Settings
) -> None:
    store = _store(client, settings, retention_s=1, tombstone_s=HOUR_S)
    keep, [pending] = await waiting(store, "a", {"type": "approval"})
    gone = []
    for end in (_finished, _failed, _cancelled):
        run_id, ids = await _run_with_history(store)
        await end(store, run_id, "job-2", ids[:1])
        gone.append((run_id, ids))
    k = store.keys
    assert await retention.sweep_once(store) == 0  # not yet expired

    await asyncio.sleep(1.1)
    assert await retention.sweep_once(store) == 3

    ttls = await _ttls(store)
    for run_id, ids in gone:
        for key in (k.run(run_id), k.run_interrupts(run_id), k.run_events(run_id)):
            assert key not in ttls
        for iid in ids:
            assert k.interrupt(iid) not in ttls and k.audit(iid) not in ttls
    assert [key for key in ttls if key.startswith(f"{k.prefix}:idem:")] == []
    # no index names a forgotten run or interrupt; the pending work is all still there
    members: set[str] = set()
    for key in ttls:
        if _shared(store, key) and await store.r.type(key) == "zset":
            members.update(await store.r.zrange(key, 0, -1))
    assert members == {keep.id, pending}
    assert await store.r.exists(k.ended_runs) == 0
    for run_id, ids in gone:
        with pytest.raises(errors.RunRecordExpired):
            await store.run(run_id)
        for iid in ids:
            with pytest.raises(errors.InterruptRecordExpired):
                await store.interrupt(iid)
    with pytest.raises(errors.RunNotFound) as unknown:
        await store.run("never-was")
    assert not isinstance(unknown.value, errors.RunRecordExpired)
    page = await store.list_runs(status=None, agent_id=None, thread_id=None, limit=50, cursor=None)
    assert [r["run_id"] for r in page.items] == [keep.id]


async def test_an_expired_record_is_unknown_to_a_key_that_could_not_see_it(
    client: aioredis.Redis, settings: Settings
) -> None:
    store = _store(client, settings, retention_s=1, tombstone_s=HOUR_S)
    run_id, ids = await _run_with_history(store, agent="secret")
    await _cancelled(store, run_id, "", [])
    await asyncio.sleep(1.1)
    allowed = auth.Principal(
        key_id="a", scopes=frozenset({auth.READ}), agents=frozenset({"secret"})
    )
    other = auth.Principal(key_id="b", scopes=frozenset({auth.READ}), agents=frozenset({"x"}))
    with pytest.raises(errors.RunRecordExpired):
        await visibility.run(store, allowed, run_id)
    with pytest.raises(errors.InterruptRecordExpired):
        await visibility.interrupt(store, allowed, ids[0])
    for call in (visibility.run(store, other, run_id), visibility.interrupt(store, other, ids[0])):
        with pytest.raises((errors.RunNotFound, errors.InterruptNotFound)) as refused:
            await call
        assert refused.value.status_code == 404


async def test_a_refusal_recorded_after_the_run_ended_expires_with_its_interrupt(
    client: aioredis.Redis, settings: Settings
) -> None:
    store = _store(client, settings, retention_s=HOUR_S)
    run, [iid] = await waiting(store, "a", {"type": "approval"})
    await store.stop_run(run.id, RunStatus.CANCELLED)
    assert await store.r.exists(store.keys.audit(iid)) == 0  # no attempt yet
    assert await store.append_audit(iid, {"actor": "late", "outcome": "interrupt_closed"})
    assert 0 < await store.r.pttl(store.keys.audit(iid)) <= HOUR_S * 1000
    # an interrupt that does not exist gets no log at all
    assert not await store.append_audit("never-was", {"actor": "x"})
    assert await store.r.exists(store.keys.audit("never-was")) == 0


async def test_the_backfill_retains_runs_that_ended_before_retention(
    client: aioredis.Redis, settings: Settings
) -> None:
    before = _store(client, settings, retention_s=0)  # what a broker without retention did
    keep, _ = await waiting(before, "a", {"type": "approval"})
    old = []
    for end in (_finished, _failed, _cancelled, _finished, _cancelled):
        run_id, ids = await _run_with_history(before)
        await end(before, run_id, "job-2", ids[:1])
        old.append((run_id, ids))
    assert [k for k, t in (await _ttls(before)).items() if t != -1] == [
        k for k in await _ttls(before) if k.startswith(f"{before.keys.prefix}:idem:")
    ]

    store = _store(client, settings, retention_s=HOUR_S)
    # bounded steps: one run of each status per step, resuming from a cursor
    assert await store.backfill_step(batch=1) == 3
    assert await store.r.hlen(store.keys.retention_scan) == 3
    steps = 1
    while await store.r.exists(store.keys.retention_scan) and steps < 10:
        await store.backfill_step(batch=1)
        steps += 1
    assert steps >= 2
    k = store.keys
    ttls = await _ttls(store)
    for run_id, ids in old:
        for key in (k.run(run_id), k.run_events(run_id), *(k.interrupt(i) for i in ids)):
            assert 0 < ttls[key] <= HOUR_S * 1000, key
    assert ttls[k.run(keep.id)] == -1
    assert await store.r.zcard(k.ended_runs) == len(old)
    # a second full scan finds nothing more to do
    assert await store.backfill_step(batch=100) == 0


async def test_runs_that_ended_longer_ago_than_the_retention_go_at_once(
    client: aioredis.Redis, settings: Settings
) -> None:
    before = _store(client, settings, retention_s=0)
    run_id, ids = await _run_with_history(before)
    await _finished(before, run_id, "job-2", ids[:1])
    await asyncio.sleep(1.1)

    store = _store(client, settings, retention_s=1, tombstone_s=HOUR_S)
    assert await retention.sweep_once(store) == 1  # retained: due at once
    await asyncio.sleep(0.05)
    assert await retention.sweep_once(store) == 1  # forgotten
    assert await store.r.zscore(store.keys.runs, run_id) is None
    with pytest.raises(errors.RunRecordExpired):
        await store.run(run_id)


async def test_the_retention_keys_in_scripts_are_named_as_the_key_module_does(
    client: aioredis.Redis, settings: Settings
) -> None:
    k = _store(client, settings).keys
    lua = k.lua() + (
        "\nreturn {K_ENDED, K_SCRATCH, k_gone_run('r:1'), k_gone_interrupt('i'), k_idem('i', 'd')}"
    )
    assert await client.eval(lua, 0) == [
        k.ended_runs,
        k.retention_scratch,
        k.run_tombstone("r:1"),
        k.interrupt_tombstone("i"),
        k.idempotency("i", "d"),
    ]


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
    pending work: once their retention passed, memory is back at the baseline."""
    short = {
        "BROKER_RETENTION_S": "1",
        "BROKER_TOMBSTONE_S": "1",
        "BROKER_CHECKPOINT_TTL_S": "1",
        "BROKER_RETENTION_SWEEP_INTERVAL_S": "0.2",
        "BROKER_EVENTS_MAXLEN_GLOBAL": "1000",
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
                assert abs(after - baseline) <= 0.1 * baseline, (baseline, after)
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
    shared = (b":seq", b":interrupts:version", b":events", b":queue", b":lock:", b":workers")

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
