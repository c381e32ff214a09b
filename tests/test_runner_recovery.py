"""The runner, the thread lease and the event follower under failure, on real Redis.

These drive ``Runner``, the thread lease and ``follow_run`` in this process so a fault
can be injected at an exact point, at the connection layer (tests/faults.py); the
end-to-end suites cover the same paths through real worker processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, TypedDict

import pytest
import redis.asyncio as aioredis
from arq.connections import ArqRedis
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt
from redis.exceptions import ConnectionError as RedisConnectionError

from broker.api.events import EventHub, follow_run
from broker.core import channel, errors, runlog
from broker.core.keys import Keys
from broker.core.records import Channel, InterruptStatus, RunRecord, RunStatus
from broker.core.saver import RedisCheckpointSaver
from broker.core.settings import Settings
from broker.core.store import Store
from tests.faults import Faults, evalsha_of, every_command
from tests.faults import client as faulty
from worker.locks import Lease, LockLost, hold
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
async def rig(
    settings: Settings, redis_url: str, queue: ArqRedis
) -> AsyncIterator[tuple[Store, Runner, Faults]]:
    faults = Faults()
    text = faulty(redis_url, faults, decode_responses=True)
    binary = aioredis.Redis.from_url(redis_url)
    store = Store(text, settings)
    saver = RedisCheckpointSaver(binary, Keys(settings.key_prefix))
    yield store, Runner(store, _graphs(), saver, settings), faults
    faults.clear()
    await text.aclose()
    await binary.aclose()


async def _answer(store: Store, queue: ArqRedis, iid: str, value: Any) -> None:
    await channel.answer(store, queue, iid, value, channel=Channel.REST)


async def test_a_recovered_resume_never_answers_the_next_question(
    rig: tuple[Store, Runner, Faults], queue: ArqRedis
) -> None:
    store, runner, faults = rig
    run = await store.create_run("two", None, {}, {})
    await runner.advance(run.id, "start")
    [step1] = await store.pending_interrupts(run.id)
    await _answer(store, queue, step1.id, True)

    # the attempt stops on step 2, then the worker dies: its record never reaches Redis
    faults.drop(evalsha_of(store._scripts["record_interrupts"]))
    with pytest.raises(RedisConnectionError):
        await runner.advance(run.id, "resume")
    assert (await store.run(run.id)).status == RunStatus.RUNNING

    assert await runner.advance(run.id, "recovery") == "recovered-interrupted"
    [step2] = await store.pending_interrupts(run.id)
    assert step2.value == {"type": "approval", "content": "step 2"}
    await _answer(store, queue, step2.id, False)
    await runner.advance(run.id, "resume-2")
    done = await store.get_run(run.id)
    assert done["status"] == "succeeded"
    assert done["output"]["values"]["log"] == ["step1=True", "step2=False"]


async def test_a_failed_run_closes_its_open_interrupts(
    rig: tuple[Store, Runner, Faults], queue: ArqRedis
) -> None:
    store, runner, _ = rig
    run = await store.create_run("fan", None, {}, {})
    await runner.advance(run.id, "start")
    by_branch = {h.value["content"]: h for h in await store.pending_interrupts(run.id)}
    a, b = by_branch["branch a"], by_branch["branch b"]
    await _answer(store, queue, a.id, 1)
    assert await runner.advance(run.id, "resume") == "failed"
    assert (await store.interrupt(b.id)).status == InterruptStatus.CANCELLED
    with pytest.raises(errors.InterruptClosed):
        await _answer(store, queue, b.id, 2)
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
    types = [e["type"] for _, e in await store.run_events(run.id)]
    assert types[-2:] == ["interrupt.cancelled", "run.failed"]  # the run's end comes last


async def test_cancel_closes_interrupts_in_the_same_step(
    rig: tuple[Store, Runner, Faults], queue: ArqRedis
) -> None:
    store, runner, faults = rig
    run = await store.create_run("two", None, {}, {})
    await runner.advance(run.id, "start")
    [step1] = await store.pending_interrupts(run.id)
    # The canceller dies right after its first command reaches Redis: whatever that
    # command did is all that happens. Only if the run's end and the interrupt's close
    # are that one command do both hold now.
    faults.lose_reply(lambda args: args[0] in ("EVALSHA", "EVAL", "MULTI", "HSET", "WATCH"))
    with pytest.raises(RedisConnectionError):
        await channel.cancel(store, queue, run.id)
    assert faults.after[0][1] == 0  # the fault fired
    assert (await store.run(run.id)).status == RunStatus.CANCELLED
    assert (await store.interrupt(step1.id)).status == InterruptStatus.CANCELLED
    assert await store.pending_interrupts(run.id) == []
    with pytest.raises(errors.InterruptClosed):
        await _answer(store, queue, step1.id, True)
    assert [e["type"] for _, e in await store.run_events(run.id)][-2:] == [
        "interrupt.cancelled",
        "run.cancelled",
    ]


async def test_a_lock_that_cannot_be_renewed_stops_its_holder(redis_url: str, keys: Keys) -> None:
    faults = Faults()
    r = faulty(redis_url, faults, decode_responses=True)
    key = keys.thread_lease("t")
    inside: list[str] = []

    async def holder() -> None:
        lease = Lease(r, key, keys.thread_fence("t"), holder="w", ttl_s=2)
        async with hold(lease, wait_s=1):
            inside.append("in")
            faults.drop(every_command, times=None)  # Redis is unreachable from now on
            await asyncio.sleep(30)  # far longer than the lock lives
            inside.append("finished")

    with pytest.raises(LockLost):
        await holder()
    assert inside == ["in"]  # stopped before another worker could take the thread
    faults.clear()
    await r.delete(key, keys.thread_fence("t"))
    await r.aclose()


async def test_a_follower_that_falls_behind_misses_nothing(
    redis_url: str, settings: Settings
) -> None:
    r = aioredis.Redis.from_url(redis_url, decode_responses=True)
    store = Store(r, settings)
    hub = EventHub(r, store.keys.events, block_ms=100)
    await hub.start()
    run = RunRecord(id="r1", thread_id="t", agent_id="a", status=RunStatus.RUNNING)
    got: list[int] = []

    async def follow() -> None:
        async for item in follow_run(
            r,
            hub,
            store.keys.run_events("r1"),
            runlog.Owner("r1", "t", "a"),
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
                await store.emit(run, "message.delta", client=pipe, n=n)
            await pipe.execute()
        await asyncio.sleep(0.01)
    await store.emit(run, "run.succeeded", n=200)
    await asyncio.wait_for(follower, 30)
    assert got == list(range(201))
    await hub.stop()
    await r.aclose()


async def test_a_start_that_died_after_its_bare_input_checkpoint_starts_over(
    rig: tuple[Store, Runner, Faults],
) -> None:
    store, runner, _ = rig
    run = await store.create_run("two", None, {}, {})
    # the dead attempt: begun, and LangGraph's input checkpoint saved without the input
    # in it (Redis or the worker died between the two writes)
    await store.begin_attempt(run.id, "", "start")
    config = {"configurable": {"thread_id": run.thread_id, "checkpoint_ns": ""}}
    await runner.saver.aput(config, empty_checkpoint(), {"source": "input", "step": -1}, {})

    # continuing from that checkpoint would end the graph at once, empty and "succeeded"
    assert await runner.advance(run.id, "recovery") == "recovered-interrupted"
    [step1] = await store.pending_interrupts(run.id)
    assert step1.value == {"type": "approval", "content": "step 1"}


class _DiesBeforeStepZero(RedisCheckpointSaver):
    """A saver whose Redis goes away after the first step's writes are saved and
    before that step's checkpoint is (a failover in between)."""

    armed = True

    async def aput(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        if self.armed and metadata.get("step") == 0:
            raise RedisConnectionError("the primary went away")
        return await super().aput(config, checkpoint, metadata, new_versions)


async def test_an_attempt_that_died_between_a_step_and_its_checkpoint_resumes(
    settings: Settings, redis_url: str
) -> None:
    text = aioredis.Redis.from_url(redis_url, decode_responses=True)
    binary = aioredis.Redis.from_url(redis_url)
    store = Store(text, settings)
    saver = _DiesBeforeStepZero(binary, Keys(settings.key_prefix))
    runner = Runner(store, _graphs(), saver, settings)
    try:
        run = await store.create_run("two", None, {}, {})
        with pytest.raises(RedisConnectionError):
            await runner.advance(run.id, "job-1", last_try=False)
        saver.armed = False
        # the saved writes are a task with nothing after it yet: the run goes on, it has
        # not finished
        assert await runner.advance(run.id, "job-2", last_try=False) == "recovered-interrupted"
        assert (await store.get_run(run.id))["status"] == RunStatus.INTERRUPTED.value
    finally:
        await text.aclose()
        await binary.aclose()
