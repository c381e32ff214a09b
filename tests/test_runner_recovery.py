"""The runner, the thread lock and the event follower under failure, on real Redis.

These drive ``Runner``, ``thread_lock`` and ``follow_run`` in this process so a failure
can be injected at an exact point; the end-to-end suites cover the same paths through
real worker processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, TypedDict

import pytest
import redis.asyncio as aioredis
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt
from redis.exceptions import ConnectionError as RedisConnectionError

from broker.api.events import EventHub, follow_run
from broker.core import errors
from broker.core.keys import Keys
from broker.core.saver import RedisCheckpointSaver
from broker.core.settings import Settings
from broker.core.store import Store
from worker.locks import LockLost, thread_lock
from worker.runner import Runner


class TwoState(TypedDict, total=False):
    log: list[str]


def _two_steps(state: TwoState) -> dict[str, Any]:
    first = interrupt({"type": "approval", "content": "step 1"})
    second = interrupt({"type": "approval", "content": "step 2"})
    return {"log": [f"step1={first}", f"step2={second}"]}


def _branch(name: str, fail: bool) -> Any:
    def node(state: TwoState) -> dict[str, Any]:
        answer = interrupt({"type": "approval", "content": f"branch {name}"})
        if fail:
            raise ValueError(f"branch {name} failed after its answer")
        return {"log": [f"{name}={answer}"]}

    return node


def _graphs() -> dict[str, Any]:
    two = StateGraph(TwoState)
    two.add_node("n", _two_steps)
    two.add_edge(START, "n")
    two.add_edge("n", END)
    fan = StateGraph(TwoState)
    fan.add_node("a", _branch("a", fail=True))
    fan.add_node("b", _branch("b", fail=False))
    fan.add_edge(START, "a")
    fan.add_edge(START, "b")
    fan.add_edge(["a", "b"], END)
    return {"two": two.compile(), "fan": fan.compile()}


@pytest.fixture
async def rig(settings: Settings, redis_url: str) -> AsyncIterator[tuple[Store, Runner]]:
    text = aioredis.Redis.from_url(redis_url, decode_responses=True)
    binary = aioredis.Redis.from_url(redis_url)
    store = Store(text, settings)
    saver = RedisCheckpointSaver(binary, Keys(settings.key_prefix))
    yield store, Runner(store, _graphs(), saver, settings)
    await text.aclose()
    await binary.aclose()


async def _pending(store: Store, run_id: str) -> list[dict[str, str]]:
    return [h for h in await store.interrupt_hashes(run_id) if h["status"] == "pending"]


async def test_a_recovered_resume_never_answers_the_next_question(
    rig: tuple[Store, Runner],
) -> None:
    store, runner = rig
    run = await store.create_run("two", None, {}, {})
    rid = run["run_id"]
    await runner.advance(rid, "start")
    [step1] = await _pending(store, rid)
    await store.resolve(step1["id"], True, resolved_by="alice", channel="rest")

    # the attempt stops on step 2, then dies before recording it
    real = runner.ledger.record_interrupted

    async def crash(*args: Any, **kwargs: Any) -> list[str]:
        raise RedisConnectionError("the worker died here")

    runner.ledger.record_interrupted = crash  # type: ignore[method-assign]
    with pytest.raises(RedisConnectionError):
        await runner.advance(rid, "resume")
    runner.ledger.record_interrupted = real  # type: ignore[method-assign]
    assert (await store.run_hash(rid))["status"] == "running"

    assert await runner.advance(rid, "recovery") == "recovered-interrupted"
    [step2] = await _pending(store, rid)
    assert step2["value"] == '{"type":"approval","content":"step 2"}'
    await store.resolve(step2["id"], False, resolved_by="bob", channel="rest")
    await runner.advance(rid, "resume-2")
    done = await store.get_run(rid)
    assert done["status"] == "succeeded"
    assert done["output"]["values"]["log"] == ["step1=True", "step2=False"]


async def test_a_failed_run_closes_its_open_interrupts(rig: tuple[Store, Runner]) -> None:
    store, runner = rig
    run = await store.create_run("fan", None, {}, {})
    rid = run["run_id"]
    await runner.advance(rid, "start")
    by_branch = {h["value"]: h for h in await _pending(store, rid)}
    a = by_branch['{"type":"approval","content":"branch a"}']
    b = by_branch['{"type":"approval","content":"branch b"}']
    await store.resolve(a["id"], 1, resolved_by=None, channel="rest")
    assert await runner.advance(rid, "resume") == "failed"
    assert (await store.interrupt_hash(b["id"]))["status"] == "cancelled"
    with pytest.raises(errors.InterruptClosed):
        await store.resolve(b["id"], 2, resolved_by=None, channel="rest")
    pending = await store.list_interrupts(
        status="pending",
        agent_id=None,
        itype=None,
        thread_id=None,
        run_id=None,
        limit=10,
        cursor=None,
    )
    assert pending.items == []
    types = [e["type"] for _, e in await store.run_events(rid)]
    assert types[-2:] == ["interrupt.cancelled", "run.failed"]  # the run's end comes last


async def test_cancel_closes_interrupts_in_the_same_step(rig: tuple[Store, Runner]) -> None:
    store, runner = rig
    run = await store.create_run("two", None, {}, {})
    rid = run["run_id"]
    await runner.advance(rid, "start")
    [step1] = await _pending(store, rid)

    async def answer() -> str:
        try:
            await store.resolve(step1["id"], True, resolved_by=None, channel="rest")
        except errors.BrokerError as exc:
            return exc.code
        return "accepted"

    results = await asyncio.gather(store.stop_run(rid, "cancelled"), answer())
    interrupt_now = await store.interrupt_hash(step1["id"])
    if results[1] == "accepted":
        assert interrupt_now["status"] == "resolved"  # answered first, then cancelled
    else:
        assert results[1] == "interrupt_closed"
        assert interrupt_now["status"] == "cancelled"
    assert (await store.run_hash(rid))["status"] == "cancelled"
    assert [e["type"] for _, e in await store.run_events(rid)][-1] == "run.cancelled"
    with pytest.raises(errors.BrokerError):
        await store.resolve(step1["id"], False, resolved_by=None, channel="rest")


async def test_a_lock_that_cannot_be_renewed_stops_its_holder(redis_url: str, keys: Keys) -> None:
    r = aioredis.Redis.from_url(redis_url, decode_responses=True)
    real_eval = r.eval
    key = keys.thread_lock("t")

    async def no_renewals(script: str, numkeys: int, *args: Any) -> Any:
        if "PEXPIRE" in script:
            raise RedisConnectionError("Redis unreachable for renewals")
        return await real_eval(script, numkeys, *args)

    r.eval = no_renewals  # type: ignore[method-assign]
    inside: list[str] = []

    async def holder() -> None:
        async with thread_lock(r, key, ttl_s=2, wait_s=1):
            inside.append("in")
            await asyncio.sleep(30)  # far longer than the lock lives
            inside.append("finished")

    with pytest.raises(LockLost):
        await holder()
    assert inside == ["in"]  # stopped before another worker could take the thread
    await r.delete(key)
    await r.aclose()


async def test_a_follower_that_falls_behind_misses_nothing(
    redis_url: str, settings: Settings
) -> None:
    r = aioredis.Redis.from_url(redis_url, decode_responses=True)
    store = Store(r, settings)
    hub = EventHub(r, store.keys.events, block_ms=100)
    await hub.start()
    run = {"id": "r1", "thread_id": "t", "agent_id": "a"}
    got: list[int] = []

    async def follow() -> None:
        async for item in follow_run(
            r,
            hub,
            store.keys.run_events("r1"),
            "r1",
            "0",
            until=frozenset({"run.succeeded"}),
            queue_max=2,
            heartbeat_s=0.5,
        ):
            if item is not None:
                got.append(item[1]["data"]["n"])
                await asyncio.sleep(0.005)  # a slow consumer: it falls behind, often

    follower = asyncio.create_task(follow())
    await asyncio.sleep(0)
    for batch in range(20):
        async with r.pipeline(transaction=True) as pipe:  # bursts overflow the queue of 2
            for n in range(batch * 10, batch * 10 + 10):
                await store.emit(pipe, "r1", store.event("message.delta", run, n=n))
            await pipe.execute()
        await asyncio.sleep(0.01)
    await store.emit(r, "r1", store.event("run.succeeded", run, n=200))
    await asyncio.wait_for(follower, 30)
    assert got == list(range(201))
    await hub.stop()
    await r.aclose()
