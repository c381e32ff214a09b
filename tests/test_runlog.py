"""A run's event log (broker/core/runlog.py): what the transition scripts append, read
back after any cursor, and capped at ``BROKER_EVENTS_MAXLEN_RUN``."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection

from broker.core import runlog
from broker.core.codec import dumps, loads
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


async def test_an_event_read_from_the_log_is_the_event_the_global_stream_holds(
    aredis: aioredis.Redis, settings: Settings
) -> None:
    """The log stores each event without its run's ids (the same for every entry), and
    the reader puts them back: a follower sees the same event from either source."""
    store = Store(aredis, settings)
    run_id, ids = await _emitted(store, 2)
    stored = await aredis.lrange(store.keys.run_events(run_id), 0, -1)
    assert all(run_id not in entry for entry in stored)
    streamed = {
        eid: loads(fields["event"])
        for eid, fields in await aredis.xrange(store.keys.events)
        if loads(fields["event"])["run_id"] == run_id
    }
    logged = dict(await store.run_events(run_id))
    assert logged == streamed
    assert list(logged) == list(streamed) == [*list(logged)[:1], *ids]


async def test_entries_written_with_their_run_ids_read_as_they_are(
    aredis: aioredis.Redis, settings: Settings
) -> None:
    store = Store(aredis, settings)
    run = await store.create_run("naming", None, {}, {})
    event = {
        "type": "message.delta",
        "ts": 1,
        "run_id": run.id,
        "thread_id": run.thread_id,
        "agent_id": run.agent_id,
        "data": {"delta": "x"},
    }
    await aredis.rpush(store.keys.run_events(run.id), f"9999999999999-0 {dumps(event)}")
    assert (await store.run_events(run.id))[-1] == ("9999999999999-0", event)


async def test_a_log_that_moves_on_between_a_readers_commands_reads_whole(
    aredis: aioredis.Redis, redis_url: str, prefix: str
) -> None:
    """The log grows at its end and is trimmed at its start while a reader walks back
    through it: the events after a cursor still come back in order, each once, none
    skipped (the walk is one atomic read)."""
    settings = Settings(redis_url=redis_url, key_prefix=prefix, events_maxlen_run=4 * runlog.CHUNK)
    store = Store(aredis, settings)
    run = await store.create_run("naming", None, {}, {})
    ids = [await store.emit(run, "message.delta", delta=str(i)) for i in range(4 * runlog.CHUNK)]

    class Busy(Connection):
        async def send_command(self, *args: Any, **kw: Any) -> None:
            # ten more events land before each command the reader sends
            ids.extend([await store.emit(run, "message.delta", delta="x") for _ in range(10)])
            await super().send_command(*args, **kw)

    pool = aioredis.ConnectionPool.from_url(redis_url, connection_class=Busy)
    reader = aioredis.Redis.from_pool(pool)
    try:
        owner = runlog.Owner(run.id, run.thread_id, run.agent_id)
        cursor = ids[len(ids) - 2 * runlog.CHUNK - 5]
        got = [
            eid
            async for eid, _ in runlog.entries(reader, store.keys.run_events(run.id), owner, cursor)
        ]
    finally:
        await reader.aclose()
    start = ids.index(cursor) + 1
    assert got == ids[start : start + len(got)]
    assert len(got) >= 2 * runlog.CHUNK + 4
