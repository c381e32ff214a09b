"""A run's event log (broker/core/runlog.py): what the transition scripts append, read
back after any cursor, and capped at ``BROKER_EVENTS_MAXLEN_RUN``."""

from __future__ import annotations

import redis.asyncio as aioredis

from broker.core import runlog
from broker.core.settings import Settings
from broker.core.store import Store


async def _emitted(store: Store, n: int) -> tuple[str, list[str]]:
    run = await store.create_run("naming", None, {}, {})
    ids = [await store.emit(run, "message.delta", delta=str(i)) for i in range(n)]
    return run.id, ids


async def test_events_after_any_cursor_come_back_in_order_and_each_once(
    aredis: aioredis.Redis, settings: Settings
) -> None:
    store = Store(aredis, settings)
    run_id, ids = await _emitted(store, 3 * runlog.CHUNK + 5)
    everything = await store.run_events(run_id)
    assert everything[0][1]["type"] == "run.queued"
    assert [eid for eid, _ in everything][1:] == ids
    assert [e["data"]["delta"] for _, e in everything[1:]] == [str(i) for i in range(len(ids))]
    # cursors in the newest chunk, chunks back, at the oldest event and at the newest
    for cut in (len(ids) - 2, len(ids) - runlog.CHUNK - 7, 0, len(ids) - 1):
        after = await store.run_events(run_id, ids[cut])
        assert [eid for eid, _ in after] == ids[cut + 1 :]
    assert await runlog.last_id(aredis, store.keys.run_events(run_id)) == ids[-1]


async def test_the_log_keeps_only_the_newest_events_past_its_cap(
    aredis: aioredis.Redis, redis_url: str, prefix: str
) -> None:
    settings = Settings(redis_url=redis_url, key_prefix=prefix, events_maxlen_run=10)
    store = Store(aredis, settings)
    run_id, ids = await _emitted(store, 25)
    assert [eid for eid, _ in await store.run_events(run_id)] == ids[-10:]
    # the global stream keeps them all (its cap is another)
    assert await aredis.xlen(store.keys.events) >= 26


async def test_a_run_without_events_has_an_empty_log(
    aredis: aioredis.Redis, settings: Settings
) -> None:
    store = Store(aredis, settings)
    assert await store.run_events("no-such-run") == []
    assert await runlog.last_id(aredis, store.keys.run_events("no-such-run")) == "0"
