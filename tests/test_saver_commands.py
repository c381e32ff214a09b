"""The checkpoint saver's cost per call does not grow with a thread's history: aput,
aput_writes and aget_tuple run as many Redis commands on a thread with a long history as
on one with a single checkpoint (the first checkpoint a run writes to a thread also
registers it), each in one round trip; retention touches a fixed set of keys. Counted
on a redis-server of the test's own (INFO commandstats counts commands inside scripts)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from langgraph.checkpoint.base import empty_checkpoint
from redis.asyncio.connection import Connection

from broker.core.fence import CONFIG_KEY, Fence
from broker.core.keys import Keys
from broker.core.saver import LegacyLayout, RedisCheckpointSaver, primed
from tests.servers import RedisServer, commands_run
from worker.locks import Lease


class _Counting(Connection):
    """Counts what the client sends: one per command, one per pipeline."""

    sends = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        _Counting.sends += 1
        await super().send_packed_command(command, check_health)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    s = RedisServer(tmp_path_factory.mktemp("saver-redis")).start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
async def client(server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    r = aioredis.Redis.from_url(server.url, connection_class=_Counting)
    try:
        yield r
    finally:
        await r.aclose()


async def _cost(r: aioredis.Redis, call: Callable[[], Awaitable[Any]]) -> tuple[int, int]:
    """Commands the server ran, and round trips the client made, for ``call``."""
    before = await commands_run(r)
    sends = _Counting.sends
    await call()
    trips = _Counting.sends - sends
    return await commands_run(r) - before - 1, trips  # less the second INFO


def _config(thread: str, cid: str | None = None, **extra: Any) -> Any:
    conf = {"thread_id": thread, "checkpoint_ns": "", **extra}
    return {"configurable": {**conf, **({"checkpoint_id": cid} if cid else {})}}


async def _costs(
    r: aioredis.Redis, saver: RedisCheckpointSaver, keys: Keys, thread: str, history: int
) -> dict[str, tuple[int, int]]:
    fence = Fence(keys.thread_fence(thread), "token")
    await r.set(fence.key, fence.token)
    parent = None
    for step in range(history + 1):
        cp = empty_checkpoint()
        cp["channel_versions"] = {"a": f"{step + 1}.0", "b": f"{step + 1}.0"}
        cp["channel_values"] = {"a": step, "b": "x" * 20}
        md: Any = {"source": "loop", "step": step, "run_id": "r-" + thread}
        config = _config(thread, parent, **{CONFIG_KEY: fence})
        if step < history:
            await saver.aput(config, cp, md, cp["channel_versions"])
            await saver.aput_writes(_config(thread, cp["id"]), [("a", step)], "t")
            parent = cp["id"]
    cid = cp["id"]
    put = _cost(r, lambda: saver.aput(config, cp, md, cp["channel_versions"]))
    costs = {"aput": await put}
    written = _config(thread, cid, **{CONFIG_KEY: fence})
    costs["aput_writes"] = await _cost(r, lambda: saver.aput_writes(written, [("a", 1)], "t"))
    latest = {"configurable": {"thread_id": thread}}
    costs["aget_tuple"] = await _cost(r, lambda: saver.aget_tuple(latest))
    costs["aget_tuple by id"] = await _cost(r, lambda: saver.aget_tuple(_config(thread, cid)))
    costs["aexpire_thread"] = await _cost(r, lambda: saver.aexpire_thread(thread, 600))
    costs["apersist_thread"] = await _cost(r, lambda: saver.apersist_thread(thread))
    tup = await saver.aget_tuple(latest)
    assert tup is not None and tup.checkpoint["channel_values"] == {"a": history, "b": "x" * 20}
    assert tup.pending_writes == [("t", "a", 1)]
    return costs


async def test_cost_per_call_does_not_grow_with_history(client: aioredis.Redis) -> None:
    keys = Keys("cost")
    saver = RedisCheckpointSaver(client, keys)
    await _costs(client, saver, keys, "warm-up", 1)  # scripts loaded, connection open
    fresh = await _costs(client, saver, keys, "fresh", 1)
    long = await _costs(client, saver, keys, "long", 300)
    assert long == fresh, (fresh, long)
    for call, (_, trips) in fresh.items():
        assert trips == 1, call
    # One script, its fence check, the index and the data hash, two set adds for the run.
    assert fresh["aput"][0] <= 6
    assert fresh["aput_writes"][0] <= 4
    assert fresh["aget_tuple"][0] <= 4


async def test_a_thread_in_the_former_layout_is_refused_not_overwritten(
    client: aioredis.Redis,
) -> None:
    keys = Keys("legacy")
    saver = RedisCheckpointSaver(client, keys)
    old = keys.checkpoint_legacy_keys("old")
    await client.sadd(old, "cost:cp:t:old:n::ids")  # type: ignore[misc]
    cp = empty_checkpoint()
    md: Any = {"source": "input", "step": -1, "run_id": "r"}
    with pytest.raises(LegacyLayout, match=r"0\.1\.0"):
        await saver.aput(_config("old"), cp, md, {})
    assert await saver.aget_tuple(_config("old")) is None
    assert await client.exists(keys.checkpoint_thread_runs("old"), keys.checkpoint_run("r")) == 0

    await saver.adelete_thread("old")
    assert await client.exists(old) == 0
    await saver.aput(_config("old"), cp, md, {})
    assert await saver.aget_tuple(_config("old")) is not None


async def test_a_primed_read_is_taken_once_without_a_round_trip(client: aioredis.Redis) -> None:
    keys = Keys("primed")
    saver = RedisCheckpointSaver(client, keys)
    await _costs(client, saver, keys, "p", 2)
    latest = {"configurable": {"thread_id": "p"}}
    stored = await saver.aget_tuple(latest)
    assert stored is not None
    with primed("p", None):  # a stand-in the store never holds: it can only come from here
        # another thread's read and a read by id are not the primed one
        assert await saver.aget_tuple({"configurable": {"thread_id": "other"}}) is None
        assert (await saver.aget_tuple(_config("p", stored.checkpoint["id"]))) is not None
        sends = _Counting.sends
        got = await asyncio.gather(asyncio.create_task(saver.aget_tuple(latest)))
        assert got == [None] and _Counting.sends == sends  # taken in a task of the attempt
        again = await saver.aget_tuple(latest)  # taken once, for the whole attempt
        assert again is not None and again.checkpoint["id"] == stored.checkpoint["id"]
    after = await saver.aget_tuple(latest)
    assert after is not None and after.checkpoint["id"] == stored.checkpoint["id"]


async def test_the_lease_and_the_checkpoint_are_taken_in_one_round_trip(
    client: aioredis.Redis,
) -> None:
    keys = Keys("leased")
    saver = RedisCheckpointSaver(client, keys)
    await _costs(client, saver, keys, "l", 2)
    latest = {"configurable": {"thread_id": "l"}}
    stored = await saver.aget_tuple(latest)
    assert stored is not None
    first = Lease(client, "leased:lease", "leased:fence", holder="w", ttl_s=5)
    await client.script_flush()  # a restarted server: neither script is loaded
    sends = _Counting.sends
    got, tup = await saver.aget_tuple_after(latest, first.acquire_call())
    assert got == 1 and tup is not None and tup.checkpoint["id"] == stored.checkpoint["id"]
    sends = _Counting.sends - sends
    trips = _Counting.sends
    other = Lease(client, "leased:lease", "leased:fence", holder="v", ttl_s=5)
    got, tup = await saver.aget_tuple_after(latest, other.acquire_call())
    assert got == 0  # held by the first: the read comes back, and the caller drops it
    assert _Counting.sends - trips == 1 and sends > 1  # loading the scripts took more
    got, tup = await saver.aget_tuple_after(
        {"configurable": {"thread_id": "none"}}, other.acquire_call()
    )
    assert got == 0 and tup is None
