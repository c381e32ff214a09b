"""Retention (docs/design.md, "Retention"; invariant 9): the step that ends a run gives
everything the run owns a TTL; pending work never gets one; the sweep drops what expired
runs leave in the indexes and backfills runs that ended before retention; reads of expired
records say so (410 ``expired_record``), unknown ids stay 404.

These run on real Redis and on fakeredis, as tests/test_store.py does; the end-to-end
tests and the soak are in tests/test_retention_e2e.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import fakeredis
import pytest
import redis.asyncio as aioredis

from broker.api import visibility
from broker.core import auth, errors
from broker.core.records import RunStatus
from broker.core.settings import Settings
from broker.core.store import Attempt, Store
from tests.stored import waiting
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
        # the entry that decided the answered interrupt, kept apart from its log
        k.audit_decision(ids[0]),
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
