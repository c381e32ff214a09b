"""RedisCheckpointSaver: LangGraph's conformance suite, case by case, plus retention,
key isolation and a real interrupted graph resumed after a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Annotated, Any, TypedDict

import pytest
import redis.asyncio as aioredis
from langchain_core.runnables import RunnableConfig
from langgraph.channels import DeltaChannel
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance import spec as suite
from langgraph.checkpoint.conformance.capabilities import Capability, DetectedCapabilities
from langgraph.checkpoint.conformance.test_utils import (
    generate_checkpoint,
    generate_config,
    generate_metadata,
)
from langgraph.checkpoint.serde.types import INTERRUPT
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from broker.core.keys import Keys
from broker.core.saver import RedisCheckpointSaver

Spec = Callable[[BaseCheckpointSaver], Coroutine[Any, Any, None]]

SUITES: dict[Capability, Sequence[Spec]] = {
    Capability.PUT: suite.test_put.ALL_PUT_TESTS,
    Capability.PUT_WRITES: suite.test_put_writes.ALL_PUT_WRITES_TESTS,
    Capability.GET_TUPLE: suite.test_get_tuple.ALL_GET_TUPLE_TESTS,
    Capability.LIST: suite.test_list.ALL_LIST_TESTS,
    Capability.DELETE_THREAD: suite.test_delete_thread.ALL_DELETE_THREAD_TESTS,
    Capability.DELETE_FOR_RUNS: suite.test_delete_for_runs.ALL_DELETE_FOR_RUNS_TESTS,
    Capability.COPY_THREAD: suite.test_copy_thread.ALL_COPY_THREAD_TESTS,
    Capability.PRUNE: suite.test_prune.ALL_PRUNE_TESTS,
}
CASES = [
    pytest.param(case, id=f"{cap.value}:{case.__name__}")
    for cap, cases in SUITES.items()
    for case in cases
]


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    r = aioredis.Redis.from_url(redis_url)
    try:
        yield r
    finally:
        await r.aclose()


@pytest.fixture
def saver(client: aioredis.Redis, keys: Keys) -> RedisCheckpointSaver:
    return RedisCheckpointSaver(client, keys)


@pytest.mark.parametrize("case", CASES)
async def test_conformance(saver: RedisCheckpointSaver, case: Spec) -> None:
    await case(saver)


async def test_conformance_report(redis_url: str, keys: Keys) -> None:
    """The suite's own runner agrees: every capability detected, every case counted above."""
    assert set(SUITES) == set(Capability)

    @checkpointer_test(name="RedisCheckpointSaver")
    async def factory() -> AsyncIterator[RedisCheckpointSaver]:
        r = aioredis.Redis.from_url(redis_url)
        try:
            yield RedisCheckpointSaver(r, keys)
        finally:
            await r.aclose()

    report = await validate(factory)
    results = report.results.values()
    assert report.passed_all(), report.to_dict()
    assert all(result.detected for result in results)
    assert sum(result.tests_passed for result in results) == len(CASES)


def test_detects_every_capability(saver: RedisCheckpointSaver) -> None:
    assert not DetectedCapabilities.from_instance(saver).missing


def test_sync_calls_name_the_async_method(saver: RedisCheckpointSaver) -> None:
    with pytest.raises(NotImplementedError, match=r"await checkpointer\.aget_tuple"):
        saver.get_tuple(generate_config("t"))
    with pytest.raises(NotImplementedError, match=r"await checkpointer\.aput\("):
        saver.put(generate_config("t"), generate_checkpoint(), generate_metadata(), {})


async def _put(
    saver: RedisCheckpointSaver,
    thread_id: str,
    ns: str = "",
    parent: str | None = None,
    run_id: str = "run",
    **values: Any,
) -> RunnableConfig:
    cp = generate_checkpoint(channel_values=values, channel_versions=dict.fromkeys(values, 1))
    config = generate_config(thread_id, checkpoint_ns=ns, checkpoint_id=parent)
    metadata = generate_metadata(run_id=run_id)
    stored = await saver.aput(config, cp, metadata, dict.fromkeys(values, 1))
    return stored


async def _thread_keys(client: aioredis.Redis, keys: Keys, thread_id: str) -> set[bytes]:
    """The thread's keys that exist: its own, and the run indexes it is listed in."""
    runs = keys.checkpoint_thread_runs(thread_id)
    members = await client.smembers(runs)  # type: ignore[misc]
    own = [keys.checkpoint_ids(thread_id), keys.checkpoint_data(thread_id), runs]
    return {k.encode() for k in own if await client.exists(k)} | set(members)


async def test_expire_and_persist_cover_every_key_of_the_thread(
    client: aioredis.Redis, keys: Keys, prefix: str
) -> None:
    saver = RedisCheckpointSaver(client, keys, ttl_s=600)
    first = await _put(saver, "done", x=1)
    await saver.aput_writes(first, [("x", 2)], "task")
    await _put(saver, "done", "child:1", y=1)
    await _put(saver, "other", run_id="other-run", z=1)

    await saver.aexpire_thread("done")
    thread_keys = await _thread_keys(client, keys, "done")
    everything = {k async for k in client.scan_iter(match=f"{prefix}:*")}
    other = await _thread_keys(client, keys, "other")
    # Every key is either the thread's, the other thread's, or the shared registry.
    assert everything == thread_keys | other | {keys.checkpoint_threads.encode()}
    assert len(thread_keys) == 4  # checkpoints, data, run indexes, the run's index
    for key in thread_keys:
        assert 0 < await client.pttl(key) <= 600_000, key
    for key in other:
        assert await client.pttl(key) == -1, key

    # Keys written after the expiry inherit it, so the thread still expires as a whole.
    second = await _put(
        saver, "done", parent=first["configurable"]["checkpoint_id"], run_id="later", x=3
    )
    await saver.aput_writes(second, [("x", 4)], "task")
    new_keys = await _thread_keys(client, keys, "done") - thread_keys
    assert new_keys == {keys.checkpoint_run("later").encode()}
    for key in new_keys:
        assert 0 < await client.pttl(key) <= 600_000, key

    await saver.apersist_thread("done")
    for key in await _thread_keys(client, keys, "done"):
        assert await client.pttl(key) == -1, key
    tup = await saver.aget_tuple(generate_config("done"))
    assert tup is not None and tup.checkpoint["channel_values"] == {"x": 3}


async def test_expire_needs_a_ttl(saver: RedisCheckpointSaver) -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        await saver.aexpire_thread("t")


async def test_expired_thread_leaves_nothing_behind(client: aioredis.Redis, keys: Keys) -> None:
    saver = RedisCheckpointSaver(client, keys)
    await _put(saver, "short", x=1)
    await saver.aexpire_thread("short", 60)
    # Stand in for the clock: bring the thread's deadline (keys and registry) to now.
    for key in await _thread_keys(client, keys, "short"):
        await client.pexpire(key, 1)
    await client.zadd(keys.checkpoint_threads, {"short": 1}, xx=True)
    await asyncio.sleep(0.01)

    assert await saver.aget_tuple(generate_config("short")) is None
    assert [t async for t in saver.alist(None)] == []
    assert await client.exists(keys.checkpoint_threads) == 0


async def test_thread_ids_and_namespaces_with_colons_do_not_collide(
    saver: RedisCheckpointSaver,
) -> None:
    # Naive "thread:ns" joins would map all three pairs onto "a:b:c".
    pairs = [("a:b", "c"), ("a", "b:c"), ("a%3Ab", "c")]
    for i, (thread_id, ns) in enumerate(pairs):
        await _put(saver, thread_id, ns, v=i)
    for i, (thread_id, ns) in enumerate(pairs):
        tup = await saver.aget_tuple(generate_config(thread_id, checkpoint_ns=ns))
        assert tup is not None and tup.checkpoint["channel_values"] == {"v": i}

    listed = {
        (t.config["configurable"]["thread_id"], t.config["configurable"]["checkpoint_ns"])
        async for t in saver.alist(None)
    }
    assert listed == set(pairs)

    await saver.adelete_thread("a:b")
    assert await saver.aget_tuple(generate_config("a:b", checkpoint_ns="c")) is None
    assert await saver.aget_tuple(generate_config("a", checkpoint_ns="b:c")) is not None
    assert await saver.aget_tuple(generate_config("a%3Ab", checkpoint_ns="c")) is not None


async def test_retried_writes_keep_the_first_value_but_special_channels_the_last(
    saver: RedisCheckpointSaver,
) -> None:
    stored = await _put(saver, "writes")
    await saver.aput_writes(stored, [("ch", "first"), (INTERRUPT, "old")], "task")
    await saver.aput_writes(stored, [("ch", "retry"), (INTERRUPT, "new")], "task")
    tup = await saver.aget_tuple(stored)
    assert tup is not None
    assert sorted(tup.pending_writes or []) == [("task", INTERRUPT, "new"), ("task", "ch", "first")]


async def test_list_pages_through_long_threads(saver: RedisCheckpointSaver) -> None:
    ids: list[str] = []
    parent = None
    for step in range(230):  # more than two pages
        cp = generate_checkpoint()
        source = "input" if step % 3 == 0 else "loop"
        config = generate_config("long", checkpoint_id=parent)
        await saver.aput(config, cp, generate_metadata(source=source, step=step), {})
        parent = cp["id"]
        ids.append(cp["id"])
    newest_first = ids[::-1]

    async def listed(**kwargs: Any) -> list[str]:
        return [t.checkpoint["id"] async for t in saver.alist(generate_config("long"), **kwargs)]

    assert await listed() == newest_first
    assert await listed(limit=150) == newest_first[:150]
    assert await listed(filter={"source": "input"}) == ids[::3][::-1]
    assert (
        await listed(filter={"source": "loop"}, limit=120)
        == [i for n, i in enumerate(ids) if n % 3][::-1][:120]
    )
    before = generate_config("long", checkpoint_id=ids[150])
    assert await listed(before=before, limit=5) == ids[145:150][::-1]
    assert await listed(before=before) == ids[:150][::-1]


def test_checkpoint_keys_share_the_prefix_and_escape_separators() -> None:
    keys = Keys("p")
    names = [
        keys.checkpoint_ids("a:b"),
        keys.checkpoint_ids("a"),
        keys.checkpoint_data("a:b"),
        keys.checkpoint_data("a:cps"),
        keys.checkpoint_ids("a:data"),
        keys.checkpoint_thread_runs("a:b"),
        keys.checkpoint_legacy_keys("a:runs"),
        keys.checkpoint_run("a:b"),
        keys.checkpoint_run("a"),
    ]
    assert len(set(names)) == len(names)
    assert all(name.startswith(keys.checkpoint_prefix() + ":") for name in names)


class _State(TypedDict):
    question: str
    answer: str


def _approval_graph() -> StateGraph[_State]:
    def ask(state: _State) -> dict[str, str]:
        return {"answer": interrupt({"question": state["question"]})}

    builder = StateGraph(_State)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", END)
    return builder


async def test_interrupt_survives_a_restart(redis_url: str, keys: Keys) -> None:
    config: Any = {"configurable": {"thread_id": "approval:1"}}
    first = aioredis.Redis.from_url(redis_url)
    try:
        graph = _approval_graph().compile(checkpointer=RedisCheckpointSaver(first, keys))
        result = await graph.ainvoke({"question": "ship it?", "answer": ""}, config)
        assert result["__interrupt__"][0].value == {"question": "ship it?"}
    finally:
        await first.aclose()

    # A new process: new connection, new saver, same Redis.
    second = aioredis.Redis.from_url(redis_url)
    try:
        saver = RedisCheckpointSaver(second, keys)
        graph = _approval_graph().compile(checkpointer=saver)
        state = await graph.aget_state(config)
        assert state.next == ("ask",)
        assert state.tasks[0].interrupts[0].value == {"question": "ship it?"}

        result = await graph.ainvoke(Command(resume="yes"), config)
        assert result == {"question": "ship it?", "answer": "yes"}
        state = await graph.aget_state(config)
        assert state.next == ()
        history = [s async for s in graph.aget_state_history(config)]
        assert len(history) >= 3
    finally:
        await second.aclose()


def _extend(state: list[str], writes: Sequence[list[str]]) -> list[str]:
    return [*state, *(item for write in writes for item in write)]


class _Log(TypedDict):
    log: Annotated[list[str], DeltaChannel(_extend, snapshot_frequency=3)]
    n: int


async def test_keep_latest_keeps_what_delta_channels_rebuild_from(
    saver: RedisCheckpointSaver,
) -> None:
    def step(state: _Log) -> dict[str, Any]:
        return {"log": [f"s{state['n']}"], "n": state["n"] + 1}

    builder = StateGraph(_Log)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", lambda s: END if s["n"] >= 7 else "step")
    graph = builder.compile(checkpointer=saver)
    config: Any = {"configurable": {"thread_id": "delta"}}
    await graph.ainvoke({"log": [], "n": 0}, config)
    expected = [f"s{i}" for i in range(7)]
    before = [s async for s in graph.aget_state_history(config)]

    await saver.aprune(["delta"])

    assert (await graph.aget_state(config)).values == {"log": expected, "n": 7}
    after = [s async for s in graph.aget_state_history(config)]
    assert 1 < len(after) < len(before)  # pruned, but not down to the latest alone
