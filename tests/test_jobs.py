"""Queueing jobs (broker/core/jobs.py): one script sets arq's job, queues it and wakes
the workers, as ``ArqRedis.enqueue_job`` would; and advance job ids carry the thread and
agent a worker needs before it takes the thread's lease."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from arq.connections import ArqRedis
from arq.jobs import Job, JobStatus

from broker.core import arq_keys, channel, errors
from broker.core.jobs import advance_job_id, enqueue, job_where
from broker.core.records import Channel
from broker.core.settings import Settings
from broker.core.store import Store
from tests.stored import waiting


def test_an_advance_job_id_carries_the_thread_and_agent_when_given() -> None:
    job_id = advance_job_id("r1", "i1", ("t.1~x", "naming"))
    assert job_id.startswith("advance:r1:i1")
    assert job_where(job_id) == ("t.1~x", "naming")
    # ids queued without them (the reconciler's, and older ones) carry nothing
    assert job_where(advance_job_id("r1", "start")) is None
    assert job_where("advance:r1:rc123") is None


@pytest.fixture
async def queue(redis_url: str, settings: Settings) -> AsyncIterator[ArqRedis]:
    arq_keys.install(Store(aioredis.Redis.from_url(redis_url), settings).keys)
    q = ArqRedis.from_url(redis_url)
    try:
        yield q
    finally:
        await q.aclose()


async def test_a_job_is_queued_once_and_arq_reads_it_back(
    queue: ArqRedis, aredis: aioredis.Redis, settings: Settings
) -> None:
    store = Store(aredis, settings)
    pubsub = aredis.pubsub()
    await pubsub.subscribe(store.keys.wake_channel)
    await pubsub.get_message(timeout=1)  # the subscription itself
    assert await enqueue(queue, store, "advance", "advance:r1:start", "r1")
    assert not await enqueue(queue, store, "advance", "advance:r1:start", "r1")
    woke = await pubsub.get_message(timeout=2)
    assert woke is not None and woke["type"] == "message"
    await pubsub.aclose()

    job = Job("advance:r1:start", queue, _queue_name=store.keys.queue)
    assert await job.status() == JobStatus.queued
    info = await job.info()
    assert info is not None and info.function == "advance" and info.args == ("r1",)
    assert await queue.zcard(store.keys.queue) == 1

    # while arq keeps the job's result, the same id is not queued again either
    await queue.delete(store.keys.arq_job_prefix + "advance:r1:start")
    await queue.set(store.keys.arq_result_prefix + "advance:r1:start", b"kept")
    assert not await enqueue(queue, store, "advance", "advance:r1:start", "r1")


async def test_an_accepted_answer_queues_its_runs_job_in_the_same_step(
    queue: ArqRedis, aredis: aioredis.Redis, settings: Settings
) -> None:
    store = Store(aredis, settings)
    run, (iid,) = await waiting(store, "naming", {"type": "approval", "content": "ok?"})
    pubsub = aredis.pubsub()
    await pubsub.subscribe(store.keys.wake_channel)
    await pubsub.get_message(timeout=1)
    await channel.answer(store, queue, iid, True, channel=Channel.REST)
    job_id = advance_job_id(run.id, iid, (run.thread_id, "naming"))
    assert await queue.zrange(store.keys.queue, 0, -1) == [job_id.encode()]
    info = await Job(job_id, queue, _queue_name=store.keys.queue).info()
    assert info is not None and info.function == "advance" and info.args == (run.id,)
    woke = await pubsub.get_message(timeout=2)
    assert woke is not None and woke["data"] == job_id  # the wake-up names the job
    await pubsub.aclose()
    # a second answer is refused, and queues nothing more
    with pytest.raises(errors.AlreadyResolved):
        await channel.answer(store, queue, iid, False, channel=Channel.REST)
    assert await queue.zcard(store.keys.queue) == 1
