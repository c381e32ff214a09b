"""Threads made before any run (LangGraph's ``POST /threads``; docs/design.md, "The
LangGraph Agent Server API"): made once in one atomic step, living as long as
checkpoints do, and dropped from thread search by the retention sweep once expired."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from broker.core.codec import loads
from broker.core.settings import Settings
from broker.core.store import Store
from worker import retention


async def test_of_concurrent_makes_one_makes_the_thread(
    aredis: aioredis.Redis, settings: Settings
) -> None:
    store = Store(aredis, settings)
    made = await asyncio.gather(*(store.make_thread("t-1", {"n": n}, "naming") for n in range(20)))
    [winner] = [n for n, at in enumerate(made) if at is not None]
    record = await aredis.hgetall(store.keys.thread_record("t-1"))
    assert loads(record["metadata"]) == {"n": winner}
    assert record["graph_id"] == "naming"
    assert await aredis.zscore(store.keys.thread_records, "t-1") == made[winner]


async def test_a_thread_with_runs_is_not_made_again(
    aredis: aioredis.Redis, settings: Settings
) -> None:
    store = Store(aredis, settings)
    run = await store.create_run("naming", "t-2", {}, {})
    assert await store.make_thread(run.thread_id, {}, None) is None
    assert not await aredis.exists(store.keys.thread_record(run.thread_id))


async def test_a_made_thread_lives_as_long_as_checkpoints(
    aredis: aioredis.Redis, redis_url: str, prefix: str
) -> None:
    kept = Store(aredis, Settings(redis_url=redis_url, key_prefix=prefix, checkpoint_ttl_s=600))
    assert await kept.make_thread("t-3", {}, None) is not None
    assert 0 < await aredis.ttl(kept.keys.thread_record("t-3")) <= 600
    # checkpoints kept for good (no retention either): so is the thread
    forever = Store(
        aredis, Settings(redis_url=redis_url, key_prefix=prefix, checkpoint_ttl_s=0, retention_s=0)
    )
    assert await forever.make_thread("t-4", {}, None) is not None
    assert await aredis.ttl(forever.keys.thread_record("t-4")) == -1


async def test_the_sweep_drops_expired_threads_from_search(
    aredis: aioredis.Redis, redis_url: str, prefix: str
) -> None:
    store = Store(aredis, Settings(redis_url=redis_url, key_prefix=prefix, checkpoint_ttl_s=60))
    assert await store.make_thread("old", {}, None) is not None
    assert await store.make_thread("new", {}, None) is not None
    # "old" was made past the TTL: its record is gone, its index entry is what is left
    await aredis.zadd(store.keys.thread_records, {"old": 1})
    await aredis.delete(store.keys.thread_record("old"))
    await retention.sweep_once(store)
    assert await aredis.zrange(store.keys.thread_records, 0, -1) == ["new"]
