"""The state machine, transition by transition (docs/design.md, "The state machine";
invariants 1 and 8).

Every test runs on real Redis and on fakeredis, calling the store's transitions as the
API and the worker do, including the races between them. No worker or API process.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from broker.core import errors
from broker.core.codec import now_ms
from broker.core.records import InterruptStatus, RunStatus
from broker.core.settings import Settings
from broker.core.store import Attempt, Store
from tests.servers import RedisServer, commands_run
from tests.stored import raised, waiting


async def _events(store: Store, run_id: str) -> list[str]:
    return [e["type"] for _, e in await store.run_events(run_id)]


async def _answer(store: Store, iid: str, value: Any, who: str = "u") -> str:
    """The raw resolve transition; returns its outcome word."""
    resolution = {"value": value, "resolved_by": who, "channel": "rest", "key_id": None}
    res = await store.resolve_script(
        iid,
        resolution=resolution,
        event={"interrupt_id": iid},
        response={},
        idempotency=None,
        audit_entry={"actor": who},
        single_use=None,
    )
    return str(res[0])


async def _expire(store: Store, iid: str, *, default: Any = None, end: RunStatus | None = None):
    h = await store.interrupt(iid)
    assert h.expires_at_ms is not None
    outcome, _, _ = await store.expire_script(
        iid,
        resolution=None if end else {"value": default, "channel": "expiry"},
        end_status=end,
        event={"interrupt_id": iid},
        audit_entry={"actor": "expiry"},
        error={"message": "expired"} if end == RunStatus.FAILED else None,
        now=h.expires_at_ms,
    )
    return outcome


async def test_create_run_queues_it_and_keeps_the_thread(store: Store) -> None:
    run = await store.create_run("a", "t1", {"x": 1}, {"m": 2})
    got = await store.run(run.id)
    assert (got.status, got.input, got.metadata) == (RunStatus.QUEUED, {"x": 1}, {"m": 2})
    assert await store.r.zscore(store.keys.runs_due, run.id) is not None
    assert (await store.active_run("t1")).id == run.id  # type: ignore[union-attr]
    with pytest.raises(errors.ThreadBusy):
        await store.create_run("a", "t1", {}, {})
    assert await _events(store, run.id) == ["run.queued"]


async def test_begin_attempt_starts_once_and_a_duplicate_begin_recovers(store: Store) -> None:
    run = await store.create_run("a", None, {}, {})
    first, second = await asyncio.gather(
        store.begin_attempt(run.id, "cp-1", "job-a"), store.begin_attempt(run.id, "cp-2", "job-b")
    )
    assert isinstance(first, Attempt) and isinstance(second, Attempt)
    # exactly one of them started the run; the other found it running (a recovery)
    assert sorted([first.prior, second.prior]) == [RunStatus.QUEUED, RunStatus.RUNNING]
    starter = first if first.prior == RunStatus.QUEUED else second
    now = await store.run(run.id)
    assert now.status == RunStatus.RUNNING
    assert now.attempts == 2
    assert now.base_checkpoint == starter.run.base_checkpoint  # recovery keeps the base
    assert (await _events(store, run.id)).count("run.started") == 1


async def test_begin_attempt_refuses_what_has_nothing_to_do(store: Store) -> None:
    assert await store.begin_attempt("nope", "", "j") == "missing"
    run, _ = await waiting(store, "a", {"type": "ask"})
    assert await store.begin_attempt(run.id, "", "j2") == "idle"  # nothing answered yet
    assert (await store.run(run.id)).status == RunStatus.INTERRUPTED
    await store.stop_run(run.id, RunStatus.CANCELLED)
    assert await store.begin_attempt(run.id, "", "j3") == "finished"
    assert await store.r.zscore(store.keys.runs_due, run.id) is None


async def test_record_interrupts_opens_pending_records_with_their_indexes(store: Store) -> None:
    run, [iid] = await waiting(store, "a", {"type": "approval", "content": "ok?"})
    h = await store.interrupt(iid)
    assert (h.status, h.type, h.value["content"]) == (InterruptStatus.PENDING, "approval", "ok?")
    k = store.keys
    for index in (
        k.interrupts_by_status("pending"),
        k.interrupts_by_agent("pending", "a"),
        k.interrupts_by_thread("pending", run.thread_id),
        k.interrupts_by_type("pending", "approval"),
    ):
        assert await store.r.zscore(index, iid) is not None
    assert run.status == RunStatus.INTERRUPTED
    assert await store.r.zrange(k.run_open(run.id), 0, -1) == [iid]
    assert (await store.get_run(run.id))["pending_interrupts"] == [iid]
    assert await _events(store, run.id) == [
        "run.queued",
        "run.started",
        "interrupt.created",
        "run.interrupted",
    ]


async def test_an_attempt_that_lost_the_run_records_nothing(store: Store) -> None:
    run = await store.create_run("a", None, {}, {})
    begun = await store.begin_attempt(run.id, "", "job-1")
    assert isinstance(begun, Attempt)
    later = await store.begin_attempt(run.id, "", "job-2")  # a later attempt took it over
    assert isinstance(later, Attempt)
    stale = [raised(begun.run, {"type": "ask"})]
    assert await store.record_interrupts(begun.run, stale, [], job_id="job-1") == []
    assert not await store.record_finish(
        run.id, RunStatus.SUCCEEDED, output={}, applied=[], job_id="job-1"
    )
    assert (await store.run(run.id)).status == RunStatus.RUNNING


async def test_resume_applies_answers_and_keeps_an_interrupt_raised_again(store: Store) -> None:
    run, [a, b] = await waiting(store, "a", {"n": 1}, {"n": 2})
    assert await _answer(store, a, "A") == "ok"
    begun = await store.begin_attempt(run.id, "cp", "job-2")
    assert isinstance(begun, Attempt)
    assert [h.id for h in begun.answers] == [a]
    assert begun.run.applying == (a,)
    # the graph stops again on b (raised again, same LangGraph id) and on a new one
    hb = await store.interrupt(b)
    new = raised(begun.run, {"n": 3})
    again = raised(begun.run, hb.value, lg_id=hb.lg_id)
    created = await store.record_interrupts(begun.run, [again, new], [a], job_id="job-2")
    assert created == [new.id]
    ha = await store.interrupt(a)
    assert ha.applied and ha.status == InterruptStatus.RESOLVED
    assert await store.r.zrange(store.keys.run_open(run.id), 0, -1) == [b, new.id]
    assert (await store.get_run(run.id))["pending_interrupts"] == [b, new.id]


async def test_an_interrupt_the_graph_moved_past_closes_fully(store: Store) -> None:
    deadline = now_ms() + 60_000
    run, [answered, iid] = await waiting(
        store, "a", {"type": "ask"}, {"type": "ask"}, expires_at_ms=deadline, on_expire="fail"
    )
    assert await store.r.zscore(store.keys.deadlines, iid) == deadline
    await _answer(store, answered, "x")
    begun = await store.begin_attempt(run.id, "", "job-2")
    assert isinstance(begun, Attempt)
    # resumed, the graph (its state edited meanwhile) asks something else instead
    other = raised(begun.run, {"type": "other"})
    await store.record_interrupts(begun.run, [other], [answered], job_id="job-2")
    h = await store.interrupt(iid)
    assert h.status == InterruptStatus.CANCELLED
    assert h.updated_ms >= h.created_ms
    assert await store.r.zscore(store.keys.deadlines, iid) is None
    assert await store.r.zscore(store.keys.interrupts_by_status("pending"), iid) is None
    assert await store.r.zscore(store.keys.interrupts_by_status("cancelled"), iid) is not None


async def test_record_finish_ends_the_run_and_closes_what_is_pending(store: Store) -> None:
    run, [a, b] = await waiting(store, "a", {"n": 1}, {"n": 2})
    await _answer(store, a, 1)
    begun = await store.begin_attempt(run.id, "cp", "job-2")
    assert isinstance(begun, Attempt)
    assert await store.record_finish(
        run.id, RunStatus.FAILED, error={"message": "boom"}, applied=[a], job_id="job-2"
    )
    done = await store.run(run.id)
    assert (done.status, done.error) == (RunStatus.FAILED, {"message": "boom"})
    assert (await store.interrupt(b)).status == InterruptStatus.CANCELLED
    assert await store.active_run(run.thread_id) is None
    assert not await store.r.exists(store.keys.run_open(run.id))
    assert (await _events(store, run.id))[-2:] == ["interrupt.cancelled", "run.failed"]
    assert await _answer(store, b, 2) == "conflict"


async def test_twenty_answers_have_one_winner(store: Store) -> None:
    _, [iid] = await waiting(store, "a", {"type": "approval"})
    outcomes = await asyncio.gather(*(_answer(store, iid, n, f"u{n}") for n in range(20)))
    assert outcomes.count("ok") == 1
    assert set(outcomes) == {"ok", "conflict"}
    assert (await store.interrupt(iid)).resolution["resolved_by"] == f"u{outcomes.index('ok')}"  # type: ignore[index]


@pytest.mark.parametrize("place", [0, 5, 10])
async def test_answer_against_expiry_has_one_winner(store: Store, place: int) -> None:
    deadline = now_ms() + 60_000
    _, [iid] = await waiting(
        store, "a", {"type": "approval"}, expires_at_ms=deadline, on_expire="resume"
    )
    calls = [_answer(store, iid, n) for n in range(10)]
    calls.insert(place, _expire(store, iid, default="D"))
    outcomes = await asyncio.gather(*calls)
    assert outcomes.count("ok") == 1, outcomes
    h = await store.interrupt(iid)
    if outcomes[place] == "ok":
        assert (h.status, h.resolution["value"]) == (InterruptStatus.EXPIRED, "D")  # type: ignore[index]
    else:
        assert h.status == InterruptStatus.RESOLVED
    assert await store.r.zscore(store.keys.deadlines, iid) is None
    assert await store.r.zscore(store.keys.runs_due, h.run_id) is not None


async def test_answer_against_cancel_leaves_no_half_state(store: Store) -> None:
    run, [iid] = await waiting(store, "a", {"type": "approval"})
    job, outcome = await asyncio.gather(
        store.stop_run(run.id, RunStatus.CANCELLED), _answer(store, iid, True)
    )
    assert job == "job-1"  # the attempt to stop
    h = await store.interrupt(iid)
    if outcome == "ok":
        assert h.status == InterruptStatus.RESOLVED  # answered first, then cancelled
    else:
        assert outcome == "conflict"
        assert h.status == InterruptStatus.CANCELLED
    assert (await store.run(run.id)).status == RunStatus.CANCELLED
    assert await _answer(store, iid, False) == "conflict"
    with pytest.raises(errors.RunFinished):
        await store.stop_run(run.id, RunStatus.CANCELLED)


async def test_an_answer_before_its_deadline_wins_and_one_after_is_refused(store: Store) -> None:
    _, [iid] = await waiting(
        store, "a", {"type": "ask"}, expires_at_ms=now_ms() - 1, on_expire="fail"
    )
    assert await _answer(store, iid, "late") == "expired"
    assert (await store.interrupt(iid)).status == InterruptStatus.PENDING


async def test_an_expiry_without_a_default_fails_the_run_in_the_same_step(store: Store) -> None:
    deadline = now_ms() + 60_000
    run, [iid, other] = await waiting(
        store, "a", {"n": 1}, {"n": 2}, expires_at_ms=deadline, on_expire="fail"
    )
    before = await store.interrupt(iid)
    early, _, _ = await store.expire_script(
        iid,
        resolution=None,
        end_status=RunStatus.FAILED,
        event={},
        audit_entry={},
        now=deadline - 1,
    )
    assert early == "not_due"
    assert await store.interrupt(iid) == before
    assert await _expire(store, iid, end=RunStatus.FAILED) == "ok"
    done = await store.run(run.id)
    assert (done.status, done.error) == (RunStatus.FAILED, {"message": "expired"})
    assert (await store.interrupt(iid)).status == InterruptStatus.EXPIRED
    assert (await store.interrupt(other)).status == InterruptStatus.CANCELLED
    assert (await _events(store, run.id))[-3:] == [
        "interrupt.expired",
        "interrupt.cancelled",
        "run.failed",
    ]
    assert await _expire(store, other, end=RunStatus.FAILED) == "closed"


async def _one_cycle(store: Store, run_id: str, n: int) -> None:
    """Answer the open interrupt, resume, and stop on the next one: one whole cycle."""
    [open_] = await store.pending_interrupts(run_id)
    assert await _answer(store, open_.id, n) == "ok"
    begun = await store.begin_attempt(run_id, f"cp-{n}", f"job-{n}")
    assert isinstance(begun, Attempt)
    nxt = raised(begun.run, {"type": "approval", "n": n})
    await store.record_interrupts(begun.run, [nxt], [open_.id], job_id=f"job-{n}")


async def test_a_long_history_costs_nothing_per_answer(tmp_path: Any) -> None:
    """A run with 500 answered interrupts answers its 501st with the same commands."""
    server = RedisServer(tmp_path).start()
    r = aioredis.Redis.from_url(server.url, decode_responses=True)
    try:
        store = Store(r, Settings(key_prefix="hist"))
        run, _ = await waiting(store, "a", {"type": "approval"})
        costs = []
        for n in range(502):
            before = await commands_run(r)
            await _one_cycle(store, run.id, n)
            costs.append(await commands_run(r) - before)
        assert costs[500] == costs[1], (costs[1], costs[500])
    finally:
        await r.aclose()
        server.stop()


async def test_the_scripts_build_every_key_name_as_the_key_module_does(store: Store) -> None:
    k = store.keys
    lua = k.lua() + (
        "\nreturn {K_SEQ, K_RUNS_DUE, k_interrupt('i:1'), k_iagent('pending', 'a b'),"
        " k_itype('expired', '_'), k_run_open('r'), k_thread_active('t%1'), k_run_events('r')}"
    )
    assert await store.r.eval(lua, 0) == [
        k.seq,
        k.runs_due,
        k.interrupt("i:1"),
        k.interrupts_by_agent("pending", "a b"),
        k.interrupts_by_type("expired", "_"),
        k.run_open("r"),
        k.thread_active_run("t%1"),
        k.run_events("r"),
    ]
