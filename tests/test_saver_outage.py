"""A checkpoint write that meets a short outage of Redis is tried again instead of
failing the step (broker/core/saver/_writes.py; docs/design.md, "Durability of
acknowledged writes"): a failed save would run the step's nodes again on the retry, once
for every retry that meets the same outage. The outage here is Redis refusing writes
(``min-replicas-to-write`` with no replica, as a new primary answers until its replicas
have synced), on a server of the test's own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from langgraph.checkpoint.base import empty_checkpoint

from broker.core import errors
from broker.core.fence import CONFIG_KEY, Fence
from broker.core.keys import Keys
from broker.core.saver import RedisCheckpointSaver
from broker.core.saver._writes import ride_out
from tests.servers import RedisServer
from worker.locks import Lease


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    s = RedisServer(tmp_path_factory.mktemp("outage-redis")).start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
async def client(server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    r = aioredis.Redis.from_url(server.url)
    try:
        yield r
    finally:
        await r.config_set("min-replicas-to-write", 0)
        await r.aclose()


async def _refused(r: aioredis.Redis) -> int:
    """Writes the server has refused for want of replicas so far."""
    stats = await r.info("errorstats")
    return int(stats.get("errorstat_NOREPLICAS", {}).get("count", 0))


async def _refuse_writes_until_one_is_refused(r: aioredis.Redis) -> None:
    """Refuses writes until one more has been refused, then accepts them again."""
    before = await _refused(r)
    await r.config_set("min-replicas-to-write", 1)
    while await _refused(r) <= before:
        await asyncio.sleep(0.01)
    await r.config_set("min-replicas-to-write", 0)


def _config(thread: str, cid: str | None = None, **extra: Any) -> Any:
    conf = {"thread_id": thread, "checkpoint_ns": "", **extra}
    return {"configurable": {**conf, **({"checkpoint_id": cid} if cid else {})}}


async def test_a_checkpoint_and_its_writes_are_saved_through_a_short_outage(
    client: aioredis.Redis,
) -> None:
    keys = Keys("outage")
    saver = RedisCheckpointSaver(client, keys, ride_out_s=30)
    cp = empty_checkpoint()
    md: Any = {"source": "loop", "step": 0, "run_id": "r"}

    before = await _refused(client)
    outage = asyncio.create_task(_refuse_writes_until_one_is_refused(client))
    while await client.config_get("min-replicas-to-write") != {"min-replicas-to-write": "1"}:
        await asyncio.sleep(0.01)
    saved = await saver.aput(_config("t"), cp, md, cp["channel_versions"])
    await outage
    assert await _refused(client) > before  # the first try met the outage
    got = await saver.aget_tuple(_config("t"))
    assert got is not None and got.checkpoint["id"] == cp["id"]

    outage = asyncio.create_task(_refuse_writes_until_one_is_refused(client))
    while await client.config_get("min-replicas-to-write") != {"min-replicas-to-write": "1"}:
        await asyncio.sleep(0.01)
    await saver.aput_writes(saved, [("a", 1)], "task")
    await outage
    got = await saver.aget_tuple(_config("t"))
    assert got is not None and [w[1:] for w in got.pending_writes] == [("a", 1)]


async def test_an_outage_longer_than_the_ride_out_fails_the_write(
    client: aioredis.Redis,
) -> None:
    keys = Keys("outage-long")
    cp = empty_checkpoint()
    md: Any = {"source": "loop", "step": 0, "run_id": "r"}
    await client.config_set("min-replicas-to-write", 1)
    for saver in (
        RedisCheckpointSaver(client, keys),  # no ride-out: the first refusal fails it
        RedisCheckpointSaver(client, keys, ride_out_s=0.3),
    ):
        before = await _refused(client)
        with pytest.raises(Exception) as refused:
            await saver.aput(_config("t"), cp, md, cp["channel_versions"])
        assert errors.unavailable(refused.value) is not None
        tries = await _refused(client) - before
        assert tries >= (2 if saver.ride_out_s else 1)
        assert tries == 1 or saver.ride_out_s
    await client.config_set("min-replicas-to-write", 0)
    assert await saver.aget_tuple(_config("t")) is None


async def test_a_fenced_write_is_refused_at_once_not_ridden_out(
    client: aioredis.Redis,
) -> None:
    """Another holder has the thread: the refusal is final, not an outage."""
    keys = Keys("outage-fenced")
    saver = RedisCheckpointSaver(client, keys, ride_out_s=30)
    mine = Lease(client, keys.thread_lease("t"), keys.thread_fence("t"), holder="a", ttl_s=5)
    assert await mine.acquire()
    stale = Fence(keys.thread_fence("t"), "an-old-token")
    cp = empty_checkpoint()
    md: Any = {"source": "loop", "step": 0, "run_id": "r"}
    with pytest.raises(Exception, match="no longer holds it"):
        await saver.aput(_config("t", **{CONFIG_KEY: stale}), cp, md, cp["channel_versions"])
    assert await saver.aget_tuple(_config("t")) is None


async def test_only_an_outage_is_tried_again() -> None:
    calls: list[str] = []

    async def broken() -> None:
        calls.append("bug")
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError):
        await ride_out(broken, 30)
    assert calls == ["bug"]
