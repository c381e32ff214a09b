"""Thread leases, their fence, and the job's retry on Redis errors (docs/design.md,
"Leases and fencing"; invariants 2 and 3), on real Redis.

- a holder whose lease lapsed takes it again under the same token; another token's
  acquisition is a takeover, after which the former holder can write nothing: no run
  transition, no checkpoint, no task writes;
- the hand-on pass frees the lease of a worker whose heartbeat is stale, never one whose
  holder is alive, and judges nobody right after a stall of its own connection;
- a lapsed lease is handed on, by the hand-on pass or as an overdue run, only if a second
  look still finds it lapsed: one its holder took again in between is left to it;
- an attempt whose thread is taken over mid-node writes neither checkpoint nor record;
- a Redis error in the middle of a job makes arq retry the job instead of failing it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, TypedDict

import pytest
import redis
import redis.asyncio as aioredis
from arq.connections import ArqRedis
from arq.jobs import Job
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.graph import END, START, StateGraph

from broker.core.codec import now_ms
from broker.core.fence import CONFIG_KEY, Fenced
from broker.core.keys import Keys
from broker.core.records import RunStatus
from broker.core.saver import RedisCheckpointSaver
from broker.core.settings import Settings
from broker.core.store import Attempt, Store
from tests.faults import Faults, evalsha_of
from tests.faults import client as faulty
from tests.graphs import counter
from worker import handover, main, reconciler
from worker.liveness import Heartbeat
from worker.locks import Lease, LockLost, hold
from worker.runner import Runner


class NState(TypedDict, total=False):
    n: int


def _lease(r: aioredis.Redis, keys: Keys, holder: str, ttl_s: float = 0.3) -> Lease:
    return Lease(r, keys.thread_lease("t"), keys.thread_fence("t"), holder=holder, ttl_s=ttl_s)


@pytest.fixture
async def binary(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def _lapse(r: aioredis.Redis, lease: Lease) -> None:
    """Waits out the lease, as a holder paused longer than its ttl would."""
    await asyncio.sleep(lease.ttl_s * 1.5)
    assert not await r.exists(lease.keys[0])


async def test_a_lapsed_lease_is_taken_again_under_the_same_token(
    aredis: aioredis.Redis, keys: Keys
) -> None:
    a, b = _lease(aredis, keys, "wa"), _lease(aredis, keys, "wb")
    assert await a.acquire()
    assert not await b.acquire()
    await _lapse(aredis, a)
    assert await a.renew() == "retaken"
    assert await aredis.get(keys.thread_lease("t")) == a.token
    assert not await b.acquire()  # it is a's again
    assert await a.renew() == "held"
    await a.release()
    assert not await aredis.exists(keys.thread_lease("t"), keys.thread_fence("t"))


async def test_another_token_is_a_takeover_and_fences_every_write_of_the_former_holder(
    aredis: aioredis.Redis, binary: aioredis.Redis, keys: Keys, settings: Settings
) -> None:
    store = Store(aredis, settings)
    saver = RedisCheckpointSaver(binary, keys)
    run = await store.create_run("counter", None, {}, {})
    a, b = _lease(aredis, keys, "wa"), _lease(aredis, keys, "wb")
    assert await a.acquire()
    assert isinstance(await store.begin_attempt(run.id, "", "job-a", fence=a.fence), Attempt)

    await _lapse(aredis, a)
    assert await b.acquire()  # b takes the thread while a is paused
    assert await a.renew() == "lost"
    assert await aredis.get(keys.thread_lease("t")) == b.token

    def config(lease: Lease, cid: str | None = None) -> Any:
        conf = {"thread_id": run.thread_id, "checkpoint_ns": "", CONFIG_KEY: lease.fence}
        return {"configurable": {**conf, **({"checkpoint_id": cid} if cid else {})}}

    checkpoint = empty_checkpoint()
    with pytest.raises(Fenced):
        await saver.aput(config(a), checkpoint, {"source": "loop", "step": 0}, {})
    with pytest.raises(Fenced):
        await saver.aput_writes(config(a, checkpoint["id"]), [("x", 1)], "task")
    assert await saver.aget_tuple({"configurable": {"thread_id": run.thread_id}}) is None
    assert not await store.record_finish(
        run.id, RunStatus.SUCCEEDED, output={}, applied=[], job_id="job-a", fence=a.fence
    )
    assert await store.begin_attempt(run.id, "", "job-a2", fence=a.fence) == "fenced"
    assert (await store.run(run.id)).status == RunStatus.RUNNING
    await a.release()  # compare-and-delete: b's lease stays
    assert await aredis.get(keys.thread_lease("t")) == b.token

    # the new holder writes as usual
    assert isinstance(await store.begin_attempt(run.id, "", "job-b", fence=b.fence), Attempt)
    await saver.aput(config(b), checkpoint, {"source": "loop", "step": 0}, {})
    await saver.aput_writes(config(b, checkpoint["id"]), [("x", 1)], "task")
    assert await store.record_finish(
        run.id, RunStatus.SUCCEEDED, output={}, applied=[], job_id="job-b", fence=b.fence
    )
    assert (await store.run(run.id)).status == RunStatus.SUCCEEDED
    await saver.adelete_thread(run.thread_id)


async def test_a_holder_goes_on_after_a_lapse_and_stops_at_a_takeover(
    aredis: aioredis.Redis, keys: Keys
) -> None:
    a = _lease(aredis, keys, "wa")
    async with hold(a, wait_s=1):
        await aredis.delete(keys.thread_lease("t"))  # lapsed while paused
        await asyncio.sleep(a.ttl_s)  # a renewal comes round
        assert await aredis.get(keys.thread_lease("t")) == a.token

    b = _lease(aredis, keys, "wb", ttl_s=5)
    steps: list[str] = []
    with pytest.raises(LockLost):
        async with hold(a, wait_s=1):
            await aredis.delete(keys.thread_lease("t"))
            assert await b.acquire()
            steps.append("taken over")
            await asyncio.sleep(5)
            steps.append("went on")
    assert steps == ["taken over"]
    assert await aredis.get(keys.thread_lease("t")) == b.token


async def _running(store: Store, holder: str) -> tuple[Any, Lease]:
    """A run in an attempt of ``holder``'s, on a thread of its own, under a 30 s lease."""
    run = await store.create_run("counter", f"thread-{holder}", {}, {})
    k = store.keys
    lease = Lease(
        store.r,
        k.thread_lease(run.thread_id),
        k.thread_fence(run.thread_id),
        holder=holder,
        ttl_s=30,
    )
    assert await lease.acquire()
    assert isinstance(await store.begin_attempt(run.id, "", f"job-{holder}"), Attempt)
    return run, lease


async def test_hand_on_frees_only_leases_of_dead_workers(
    aredis: aioredis.Redis, keys: Keys, settings: Settings, queue: ArqRedis
) -> None:
    settings = settings.model_copy(update={"worker_heartbeat_s": 0.1, "lease_ttl_s": 30})
    store = Store(aredis, settings)
    observer = Heartbeat(store, "observer")
    threads = {holder: await _running(store, holder) for holder in ("alive", "dead")}
    await observer.beat()
    # right after its own connection came back, the observer judges nobody
    await aredis.zadd(keys.workers, {"dead": now_ms() - 10_000, "alive": now_ms()})
    assert await handover.hand_on(store, queue, observer) == 0

    await asyncio.sleep(0.4)  # the observer has watched for more than three heartbeats
    await Heartbeat(store, "alive").beat()
    await aredis.zadd(keys.workers, {"dead": now_ms() - 400})  # its last, four beats ago
    assert await handover.hand_on(store, queue, observer) == 1
    dead_run, _ = threads["dead"]
    alive_run, alive = threads["alive"]
    assert not await aredis.exists(keys.thread_lease(dead_run.thread_id))
    assert await aredis.get(keys.thread_lease(alive_run.thread_id)) == alive.token
    jobs = await queue.queued_jobs()
    assert [(j.function, j.args) for j in jobs] == [("advance", (dead_run.id,))]
    assert await handover.hand_on(store, queue, observer) == 0  # queued once


@pytest.mark.parametrize("which", ["hand-on", "overdue"])
async def test_a_lapsed_lease_its_holder_takes_again_between_the_looks_is_left_to_it(
    aredis: aioredis.Redis,
    keys: Keys,
    settings: Settings,
    queue: ArqRedis,
    monkeypatch: pytest.MonkeyPatch,
    which: str,
) -> None:
    store = Store(aredis, settings.model_copy(update={"reconcile_grace_s": 0.001}))
    leases = {name: await _running(store, name) for name in ("retaken", "gone")}
    for run, _ in leases.values():
        await aredis.delete(keys.thread_lease(run.thread_id))  # lapsed, as after a stall
    looks: list[str] = []

    async def renewed_between(s: Store) -> None:
        # the holder's renewal, sent during the stall, lands between the looks
        looks.append("between")
        assert await leases["retaken"][1].renew() == "retaken"

    monkeypatch.setattr(handover, "between_looks", renewed_between)
    await asyncio.sleep(0.01)  # overdue by the grace
    if which == "hand-on":
        assert await handover.hand_on(store, queue, Heartbeat(store, "observer")) == 1
    else:
        assert await reconciler.reconcile_once(store, queue) == 1
    assert looks == ["between"]
    gone = leases["gone"][0]
    assert [(j.function, j.args) for j in await queue.queued_jobs()] == [("advance", (gone.id,))]
    assert await handover.still_lapsed(aredis, keys, [r.thread_id for r, _ in leases.values()]) == {
        gone.thread_id
    }


async def test_an_attempt_that_loses_its_thread_mid_node_records_nothing(
    aredis: aioredis.Redis, binary: aioredis.Redis, keys: Keys, settings: Settings, redis_url: str
) -> None:
    store = Store(aredis, settings)
    saver = RedisCheckpointSaver(binary, keys)

    def taken_over(state: NState, config: RunnableConfig) -> dict[str, Any]:
        # another holder takes the thread while this node runs
        sync = redis.Redis.from_url(redis_url)
        sync.set(keys.thread_fence(config["configurable"]["thread_id"]), "other|token")
        sync.close()
        return {"n": 1}

    g = StateGraph(NState)
    g.add_node("node", taken_over)
    g.add_edge(START, "node")
    g.add_edge("node", END)
    runner = Runner(store, {"taken": g.compile()}, saver, settings, worker_id="w")
    run = await store.create_run("taken", None, {"n": 0}, {})
    with pytest.raises(Fenced):
        await runner.advance(run.id, "job-1")
    assert (await store.run(run.id)).status == RunStatus.RUNNING  # neither failed nor done
    tup = await saver.aget_tuple({"configurable": {"thread_id": run.thread_id}})
    # its one checkpoint write, where the graph stopped, was refused by the fence
    assert tup is None
    await saver.adelete_thread(run.thread_id)


@pytest.mark.slow
async def test_a_redis_error_mid_job_retries_the_job(
    redis_url: str, settings: Settings, keys: Keys, queue: ArqRedis
) -> None:
    faults = Faults()
    stores: list[Store] = []

    async def startup(ctx: dict[str, Any]) -> None:
        await main.startup(ctx)
        # the same runner, on a store whose connection drops the first record interrupts
        store = Store(faulty(redis_url, faults, decode_responses=True), settings)
        stores.append(store)
        faults.drop(evalsha_of(store._scripts["record_interrupts"]))
        saver = ctx["runner"].saver
        ctx["runner"] = Runner(store, {"counter": counter}, saver, settings, worker_id="w")

    worker = main.build_worker(settings, burst=True, on_startup=startup, poll_delay=0.05)
    store = Store(aioredis.Redis.from_url(redis_url, decode_responses=True), settings)
    run = await store.create_run("counter", None, {}, {})
    job = await queue.enqueue_job("advance", run.id, _job_id=f"advance:{run.id}:start")
    assert job is not None
    try:
        await asyncio.wait_for(worker.main(), 60)
    finally:
        # what Worker.close does, without its deprecated pool.close()
        assert worker.on_shutdown is not None
        await worker.on_shutdown(worker.ctx)
        await worker.pool.aclose()
    assert faults.before[0][1] == 0  # the fault fired
    assert (worker.jobs_retried, worker.jobs_failed, worker.jobs_complete) == (1, 0, 1)
    info = await Job(job.job_id, queue, _queue_name=keys.queue).result_info()
    assert info is not None and info.success and info.job_try == 2
    assert (await store.run(run.id)).status == RunStatus.INTERRUPTED
    assert len(await store.pending_interrupts(run.id)) == 1
    for each in [*stores, store]:
        await each.r.aclose()
