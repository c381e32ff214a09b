"""The undo window (docs/design.md, "Undo window"): an answer is held as ``accepted``,
its author withdraws it while the window is open, and once it has closed the run
resumes with it exactly once. Withdraw and the window's close are each one transition
that checks the status and the time, so exactly one of them wins.

The store tests drive the transitions directly; the end-to-end ones (tests/test_undo_e2e.py)
run real worker processes.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from arq.connections import ArqRedis

from broker.core import auth, channel, errors, jobs, undo
from broker.core.codec import loads, now_ms
from broker.core.records import Channel, InterruptStatus
from broker.core.settings import Settings
from broker.core.store import Attempt, Store
from tests.stored import waiting

ADA = auth.Principal(
    key_id=None,
    scopes=frozenset({auth.READ, auth.RESOLVE}),
    person=auth.Person("ada", "https://id.example.test", "ada@example.com", "Ada", frozenset()),
)
BOB = auth.Principal(
    key_id=None,
    scopes=frozenset({auth.READ, auth.RESOLVE}),
    person=auth.Person("bob", "https://id.example.test", "bob@example.com", "Bob", frozenset()),
)
SERVICE = auth.Principal(key_id="slack-app", scopes=frozenset({auth.RESOLVE, auth.ON_BEHALF}))
QUESTION = {"type": "approval", "content": "send it?"}


# -- declaring ---------------------------------------------------------------------------


def test_the_value_wins_over_the_configuration() -> None:
    rules = Settings(undo=json.dumps([{"agent": "a", "type": "approval", "undo_s": 8}])).undo
    assert undo.policy({"type": "approval"}, "a", "approval", rules) == 8000
    assert undo.policy({"type": "approval"}, "b", "approval", rules) == 0
    assert undo.policy({"undo_s": 2.5}, "b", None, rules) == 2500
    # an unusable window in a value is ignored (no window), as an unusable expiry is
    for bad in (0, -1, 3601, True, "8"):
        assert undo.policy({"undo_s": bad}, "a", "approval", rules) == 0
    for config in ('[{"undo_s": 0}]', '[{"undo_s": "8"}]', "[1]", '[{"agent": "a"}]'):
        with pytest.raises(undo.UndoConfigError, match="BROKER_UNDO"):
            undo.rules(Settings(undo=config).undo)


# -- holding and withdrawing -------------------------------------------------------------


async def _held(
    store: Store,
    queue: ArqRedis,
    undo_ms: int = 30_000,
    idempotency_key: str | None = None,
    **extra: Any,
) -> str:
    _, [iid] = await waiting(store, "mailer", QUESTION, undo_ms=undo_ms, **extra)
    got = await channel.answer(
        store,
        queue,
        iid,
        True,
        channel=Channel.REST,
        principal=ADA,
        idempotency_key=idempotency_key,
    )
    assert got["status"] == "accepted", got
    return iid


def _job(store: Store, iid: str, h: Any) -> str:
    return store.keys.arq_job_prefix + jobs.advance_job_id(h.run_id, iid, (h.thread_id, h.agent_id))


async def _kinds(store: Store, run_id: str) -> list[str]:
    return [e["type"] for _, e in await store.run_events(run_id)]


async def _listed(store: Store, status: str) -> list[dict[str, Any]]:
    page = await store.list_interrupts(
        status=status, agent_id=None, itype=None, thread_id=None, run_id=None, limit=50, cursor=None
    )
    return list(page.items)


async def test_an_answer_is_held_and_its_resume_queued_for_when_the_window_closes(
    store: Store, queue: ArqRedis
) -> None:
    before = now_ms()
    iid = await _held(store, queue)
    h = await store.interrupt(iid)
    assert h.status == InterruptStatus.ACCEPTED
    assert h.held_until_ms is not None and before + 30_000 <= h.held_until_ms
    assert (h.resolution or {})["value"] is True
    view = h.view()
    assert view["undo"]["undo_s"] == 30 and view["undo"]["held_until"] is not None
    # the run is due, and its job queued, for the window's close: not before
    k = store.keys
    assert await store.r.zscore(k.runs_due, h.run_id) == h.held_until_ms
    job_id = jobs.advance_job_id(h.run_id, iid, (h.thread_id, h.agent_id))
    assert await store.r.zscore(k.queue, job_id) == h.held_until_ms
    assert await store.r.exists(_job(store, iid, h))
    # listed as accepted, no longer as pending
    accepted = await _listed(store, "accepted")
    assert [i["id"] for i in accepted] == [iid]
    assert accepted[0]["undo"]["held_until"] == view["undo"]["held_until"]
    assert await _listed(store, "pending") == []
    assert (await _kinds(store, h.run_id))[-1] == "interrupt.accepted"

    # a second answer meets the held one, as it would a resolved one
    with pytest.raises(errors.AlreadyResolved) as second:
        await channel.answer(store, queue, iid, False, channel=Channel.REST, principal=BOB)
    assert second.value.details["resolution"]["value"] is True
    # an attempt that comes early applies nothing: the answer stays held
    begun = await store.begin_attempt(h.run_id, "", "early")
    assert begun == "held"
    assert (await store.interrupt(iid)).status == InterruptStatus.ACCEPTED
    assert (await store.run(h.run_id)).status == "interrupted"


async def test_its_author_withdraws_it_and_the_interrupt_is_pending_again(
    store: Store, queue: ArqRedis
) -> None:
    iid = await _held(store, queue, expires_at_ms=now_ms() + 600_000)
    h = await store.interrupt(iid)
    k = store.keys

    # someone else may not; nothing changes
    with pytest.raises(errors.NotAuthor):
        await undo.withdraw(store, queue, iid, BOB)
    assert await store.interrupt(iid) == h

    got = await undo.withdraw(store, queue, iid, ADA)
    assert got["status"] == "pending" and got["resolution"] is None
    assert got["undo"] == {"undo_s": 30, "held_until": None}
    after = await store.interrupt(iid)
    assert after.status == InterruptStatus.PENDING and after.held_by == ""
    # its resume is gone from the queue, the run no longer due, its deadline back
    job_id = jobs.advance_job_id(h.run_id, iid, (h.thread_id, h.agent_id))
    assert await store.r.zscore(k.queue, job_id) is None
    assert not await store.r.exists(_job(store, iid, h))
    assert await store.r.zscore(k.runs_due, h.run_id) is None
    assert await store.r.zscore(k.deadlines, iid) == h.expires_at_ms
    assert [i["id"] for i in await _listed(store, "pending")] == [iid]
    kinds = await _kinds(store, h.run_id)
    assert kinds[-2:] == ["interrupt.accepted", "interrupt.withdrawn"]
    trail = [loads(e) for e in await store.r.lrange(k.audit(iid), 0, -1)]
    assert [e["outcome"] for e in trail] == ["accepted", "not_author", "withdrawn"]
    assert not await store.r.exists(k.audit_decision(iid))
    # a job that comes anyway finds nothing to apply
    assert await store.begin_attempt(h.run_id, "", "stray") == "idle"

    # twice: nothing is held now
    with pytest.raises(errors.NotHeld):
        await undo.withdraw(store, queue, iid, ADA)
    # answered again, held again: the new answer is the one that counts
    again = await channel.answer(store, queue, iid, False, channel=Channel.REST, principal=BOB)
    assert again["status"] == "accepted" and again["resolution"]["value"] is False
    assert await store.r.zscore(k.queue, job_id) is not None
    # a key answering on people's behalf may withdraw anyone's answer
    assert (await undo.withdraw(store, queue, iid, SERVICE))["status"] == "pending"


async def test_once_the_window_has_closed_the_run_resumes_and_withdraw_is_too_late(
    store: Store, queue: ArqRedis
) -> None:
    iid = await _held(store, queue, undo_ms=1)
    h = await store.interrupt(iid)
    while now_ms() <= (h.held_until_ms or 0):
        await asyncio.sleep(0.005)
    with pytest.raises(errors.UndoWindowClosed):
        await undo.withdraw(store, queue, iid, ADA)
    assert await store.interrupt(iid) == h  # refused: nothing changed

    begun = await store.begin_attempt(h.run_id, "", "on-time")
    assert isinstance(begun, Attempt)
    assert [a.id for a in begun.answers] == [iid]
    assert begun.answers[0].status == InterruptStatus.RESOLVED
    released = await store.interrupt(iid)
    assert released.status == InterruptStatus.RESOLVED and released.held_until_ms is None
    assert (released.resolution or {})["value"] is True
    kinds = await _kinds(store, h.run_id)
    assert kinds[-3:] == ["interrupt.accepted", "interrupt.resolved", "run.resumed"]
    with pytest.raises(errors.NotHeld):
        await undo.withdraw(store, queue, iid, ADA)


async def test_a_withdrawal_racing_the_window_close_has_one_winner(
    store: Store, queue: ArqRedis
) -> None:
    """Many times over, a withdrawal and the attempt the window's close starts are sent
    at once around the moment it closes: the answer is either withdrawn and never
    applied, or applied and the withdrawal refused."""
    for _ in range(15):
        iid = await _held(store, queue, undo_ms=2)
        h = await store.interrupt(iid)

        async def withdraw(iid: str = iid) -> str:
            try:
                await undo.withdraw(store, queue, iid, ADA)
            except errors.BrokerError as exc:
                return exc.code
            return "withdrawn"

        async def attempt(run_id: str = h.run_id) -> str:
            begun = await store.begin_attempt(run_id, "", "close")
            return "applied" if isinstance(begun, Attempt) and begun.answers else str(begun)

        w, a = await asyncio.gather(withdraw(), attempt())
        after = await store.interrupt(iid)
        if w == "withdrawn":
            assert a in ("held", "idle"), (w, a)
            assert after.status == InterruptStatus.PENDING
        else:
            # refused as too late, or (the attempt first) as no longer held
            assert w in ("undo_window_closed", "not_held"), (w, a)
            if a == "held":
                # the attempt ran a moment before the close by its clock: still held, the
                # next one applies it
                assert after.status == InterruptStatus.ACCEPTED
                a = await attempt()
            assert a == "applied"
            assert (await store.interrupt(iid)).status == InterruptStatus.RESOLVED


async def test_withdraw_refuses_what_it_cannot_take_back(store: Store, queue: ArqRedis) -> None:
    with pytest.raises(errors.InterruptNotFound):
        await undo.withdraw(store, queue, "00000000-0000-4000-8000-000000000000", ADA)
    _, [plain] = await waiting(store, "mailer", QUESTION)
    with pytest.raises(errors.NotHeld):
        await undo.withdraw(store, queue, plain, ADA)  # pending: nothing held
    # an interrupt without a window is resolved at once, and nothing is held
    got = await channel.answer(store, queue, plain, True, channel=Channel.REST, principal=ADA)
    assert got["status"] == "resolved" and got["undo"] is None
    with pytest.raises(errors.NotHeld):
        await undo.withdraw(store, queue, plain, ADA)
    reader = auth.Principal(key_id="reader", scopes=frozenset({auth.READ}))
    iid = await _held(store, queue)
    with pytest.raises(errors.Forbidden):
        await undo.withdraw(store, queue, iid, reader)
    assert (await store.interrupt(iid)).status == InterruptStatus.ACCEPTED


async def test_a_run_that_ends_closes_a_held_answer_and_nothing_is_withdrawn_after(
    store: Store, queue: ArqRedis
) -> None:
    iid = await _held(store, queue)
    h = await store.interrupt(iid)
    await channel.cancel(store, queue, h.run_id)
    closed = await store.interrupt(iid)
    assert closed.status == InterruptStatus.CANCELLED and closed.held_until_ms is None
    assert await _listed(store, "accepted") == []
    with pytest.raises(errors.NotHeld):
        await undo.withdraw(store, queue, iid, ADA)
    assert await _listed(store, "pending") == []


async def test_a_retry_of_a_withdrawn_answer_is_a_new_answer_not_a_replay(
    store: Store, queue: ArqRedis
) -> None:
    iid = await _held(store, queue)
    await undo.withdraw(store, queue, iid, ADA)
    first = await channel.answer(
        store, queue, iid, True, channel=Channel.REST, principal=ADA, idempotency_key="k1"
    )
    assert first["status"] == "accepted"
    await undo.withdraw(store, queue, iid, ADA)
    # the same key again: the interrupt takes it as the answer it now is
    again = await channel.answer(
        store, queue, iid, False, channel=Channel.REST, principal=ADA, idempotency_key="k1"
    )
    assert again["status"] == "accepted" and again["resolution"]["value"] is False
    assert ((await store.interrupt(iid)).resolution or {})["value"] is False


async def test_past_the_interrupt_s_deadline_the_held_answer_stands(
    store: Store, queue: ArqRedis
) -> None:
    deadline = now_ms() + 200
    iid = await _held(store, queue, expires_at_ms=deadline)
    while now_ms() <= deadline:
        await asyncio.sleep(0.01)
    with pytest.raises(errors.UndoWindowClosed):
        await undo.withdraw(store, queue, iid, ADA)
    assert (await store.interrupt(iid)).status == InterruptStatus.ACCEPTED
