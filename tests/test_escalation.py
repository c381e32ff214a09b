"""Escalation ladders (docs/design.md, "Escalation ladders"): a waiting interrupt is
reminded about, reassigned, then given its default, each step one transition run by the
worker's deadline pass; an answer racing any step leaves exactly one winner.

The store tests move the clock: the pass takes the time it runs at (``now``), and the
scripts check each step against it, so a step far in the future is run without waiting.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aioredis
from arq.connections import ArqRedis
from standardwebhooks import Webhook

from broker.core import auth, channel, escalate, escalation, signing
from broker.core.codec import loads, now_ms
from broker.core.records import Channel, InterruptStatus
from broker.core.settings import Settings
from broker.core.store import Store
from tests.flow import start, wait_status
from tests.graphs import EXPIRY_DEFAULT
from tests.harness import Broker, wait_until
from tests.receiver import Receiver, running
from tests.stored import waiting

ALICE = auth.Principal(
    key_id=None,
    scopes=frozenset({auth.READ, auth.RESOLVE}),
    person=auth.Person("alice", "https://id.example.test", None, "Alice", frozenset()),
)
LADDER = [
    {"after_s": 60, "remind": True},
    {"after_s": 120, "assign": ["group:managers"]},
    {"after_s": 180, "default": "D"},
]


# -- declaring ---------------------------------------------------------------------------


def test_a_ladder_parses_into_steps_and_a_final_expiry() -> None:
    ladder = escalation.parse(LADDER, "x")
    assert [(s.kind, s.after_s, s.assign) for s in ladder.steps] == [
        ("remind", 60, ()),
        ("assign", 120, ("group:managers",)),
    ]
    assert ladder.final is not None
    assert (ladder.final.expires_in_s, ladder.final.on_expire, ladder.final.default) == (
        180,
        "resume",
        "D",
    )
    cancel = escalation.parse(
        [{"after_s": 1, "remind": True}, {"after_s": 2, "on_expire": "cancel"}], "x"
    )
    assert cancel.final is not None and cancel.final.on_expire == "cancel"
    open_ended = escalation.parse([{"after_s": 1, "remind": True}], "x")
    assert open_ended.final is None


@pytest.mark.parametrize(
    ("steps", "why"),
    [
        ([], "non-empty"),
        ([{"after_s": 0, "remind": True}], "positive"),
        ([{"after_s": True, "remind": True}], "positive"),
        ([{"after_s": 2, "remind": True}, {"after_s": 1, "remind": True}], "increase"),
        ([{"after_s": 1, "remind": True}, {"after_s": 1, "remind": True}], "increase"),
        ([{"after_s": 1, "default": 1}, {"after_s": 2, "remind": True}], "only the last"),
        ([{"after_s": 1, "remind": True, "assign": ["group:a"]}], "one thing"),
        ([{"after_s": 1}], "one thing"),
        ([{"after_s": 1, "remind": False}], "remind must be true"),
        ([{"after_s": 1, "assign": ["managers"]}], "not a name"),
        ([{"after_s": 1, "assign": []}], "at least one"),
        ([{"after_s": 1, "on_expire": "later"}], "on_expire"),
        ([{"after_s": 1, "remind": True, "later": 1}], "unknown"),
    ],
)
def test_unusable_ladders_are_refused(steps: list[Any], why: str) -> None:
    with pytest.raises(escalation.EscalationConfigError, match=why):
        escalation.parse(steps, "x")


def test_the_value_wins_over_the_configuration_and_the_ladder_over_expires_in() -> None:
    rules = Settings(
        escalation=json.dumps([{"agent": "a", "escalation": [{"after_s": 5, "remind": True}]}])
    ).escalation
    configured = escalation.policy({"type": "approval"}, "a", "approval", rules)
    assert configured is not None and configured.steps[0].after_s == 5
    assert escalation.policy({}, "b", None, rules) is None
    # a value's own expiry keeps the configured ladder away
    assert escalation.policy({"expires_in": 9}, "a", None, rules) is None
    both = escalation.policy({"expires_in": 9, "escalation": LADDER}, "a", None, rules)
    assert both is not None and both.final is not None and both.final.expires_in_s == 180
    # an unusable ladder in a value is ignored, as an unusable expiry is
    assert escalation.policy({"escalation": [{"after_s": -1}]}, "a", None, rules) is None
    for bad in (
        '[{"escalation": []}]',
        '[{"escalation": [{"after_s": 1, "remind": true}], "x": 1}]',
        "[1]",
    ):
        with pytest.raises(escalation.EscalationConfigError, match="BROKER_ESCALATION"):
            escalation.rules(Settings(escalation=bad).escalation)


# -- enforcing, on a moved clock --------------------------------------------------------


async def _laddered(store: Store, assignees: tuple[str, ...] = ("user:alice",)) -> str:
    ladder = escalation.parse(LADDER, "test")
    assert ladder.final is not None
    ts = now_ms()
    _, [iid] = await waiting(
        store,
        "expiring",
        {"type": "approval", "escalation": LADDER},
        escalation=tuple(s.record(ts) for s in ladder.steps),
        expires_at_ms=ts + 180_000,
        on_expire=ladder.final.on_expire,
        expiry_default=ladder.final.default,
        assignees=assignees,
    )
    return iid


def _audit(raw: list[str]) -> list[dict[str, Any]]:
    return [loads(x) for x in raw]


async def test_each_step_runs_once_when_due_and_moves_the_deadline(
    store: Store, queue: ArqRedis
) -> None:
    iid = await _laddered(store)
    h = await store.interrupt(iid)
    at = [int(s["at_ms"]) for s in h.escalation]
    assert h.expires_at_ms is not None
    deadline = store.keys.deadlines
    assert await store.r.zscore(deadline, iid) == at[0]
    assert h.view()["escalation"]["done"] == 0

    # not yet due: nothing changes
    assert not await escalate.run_due(store, queue, iid, at[0] - 1)
    assert await store.interrupt(iid) == h

    assert await escalate.run_due(store, queue, iid, at[0])
    reminded = await store.interrupt(iid)
    assert reminded.status == InterruptStatus.PENDING and reminded.escalation_next == 1
    assert await store.r.zscore(deadline, iid) == at[1]
    # the same step read again does not run twice
    assert await escalate.step_once(store, h, at[0]) == "stale"
    assert not await escalate.run_due(store, queue, iid, at[1] - 1)

    assert await escalate.run_due(store, queue, iid, at[1])
    moved = await store.interrupt(iid)
    assert moved.assignees == ("group:managers",)
    assert await store.r.zscore(deadline, iid) == h.expires_at_ms
    assert (
        await store.r.zrange(store.keys.interrupts_by_assignee("pending", "user:alice"), 0, -1)
        == []
    )
    assert await store.r.zrange(
        store.keys.interrupts_by_assignee("pending", "group:managers"), 0, -1
    ) == [iid]

    assert await escalate.run_due(store, queue, iid, h.expires_at_ms)
    done = await store.interrupt(iid)
    assert done.status == InterruptStatus.EXPIRED
    assert (done.resolution or {})["value"] == "D"
    assert (done.resolution or {})["channel"] == "expiry"
    assert await store.r.zscore(deadline, iid) is None
    assert await store.r.zscore(store.keys.runs_due, done.run_id) is not None

    trail = _audit(await store.r.lrange(store.keys.audit(iid), 0, -1))
    assert [(e["actor"], e["outcome"], e.get("step")) for e in trail] == [
        ("escalation", "reminded", 0),
        ("escalation", "assigned", 1),
        ("expiry", "accepted", None),
    ]
    assert trail[0]["assignees"] == ["user:alice"]
    assert trail[1]["previous_assignees"] == ["user:alice"]
    assert trail[1]["assignees"] == ["group:managers"]


async def test_a_pass_late_for_the_expiry_ends_the_wait(store: Store, queue: ArqRedis) -> None:
    iid = await _laddered(store)
    h = await store.interrupt(iid)
    assert h.expires_at_ms is not None
    assert await escalate.run_due(store, queue, iid, h.expires_at_ms + 1)
    after = await store.interrupt(iid)
    assert after.status == InterruptStatus.EXPIRED and after.escalation_next == 0
    trail = _audit(await store.r.lrange(store.keys.audit(iid), 0, -1))
    assert [e["outcome"] for e in trail] == ["accepted"]


async def _race(
    store: Store, queue: ArqRedis, iid: str, at: int, who: auth.Principal | None, first: bool
) -> tuple[str, str]:
    """An answer and the step due at ``at``, concurrently; (answer's outcome, step's)."""

    async def person() -> str:
        try:
            await channel.answer(store, queue, iid, "yes", channel=Channel.REST, principal=who)
        except Exception as exc:
            return type(exc).__name__
        return "ok"

    async def step() -> str:
        return "ok" if await escalate.run_due(store, queue, iid, at) else "lost"

    jobs = [person(), step()] if first else [step(), person()]
    outcomes = await asyncio.gather(*jobs)
    return (outcomes[0], outcomes[1]) if first else (outcomes[1], outcomes[0])


@pytest.mark.parametrize("kind", ["remind", "assign", "expire"])
async def test_an_answer_racing_a_step_has_one_winner(
    aredis: aioredis.Redis, settings: Settings, queue: ArqRedis, kind: str
) -> None:
    """docs/design.md, "Escalation ladders": of a person's answer and a step, whichever
    runs first holds; the step never runs after the answer, and an answer the step made
    invalid (reassigned away from them, or past the deadline) is refused."""
    store = Store(aredis, settings)
    wins = {"answer": 0, "step": 0}
    for round_ in range(12):
        iid = await _laddered(store)
        h = await store.interrupt(iid)
        assert h.expires_at_ms is not None
        step_no = {"remind": 0, "assign": 1, "expire": 2}[kind]
        if step_no:
            # earlier steps have run
            for n in range(step_no):
                assert await escalate.run_due(store, queue, iid, int(h.escalation[n]["at_ms"]))
        at = int(h.escalation[step_no]["at_ms"]) if kind != "expire" else h.expires_at_ms
        # alice answers herself for the assign step (it takes the interrupt from her);
        # otherwise the broker answers on her behalf
        who = ALICE if kind == "assign" else None
        answered, stepped = await _race(store, queue, iid, at, who, round_ % 2 == 0)

        after = await store.interrupt(iid)
        trail = _audit(await aredis.lrange(store.keys.audit(iid), 0, -1))
        outcomes = [e["outcome"] for e in trail]
        accepted = [e for e in trail if e["outcome"] == "accepted"]
        if kind == "remind":
            # a reminder decides nothing: it may come before the answer, never after it
            assert (answered, len(accepted)) == ("ok", 1), answered
            if stepped == "ok":
                assert outcomes.index("reminded") < outcomes.index("accepted")
            else:
                assert "reminded" not in outcomes
        else:
            assert [answered, stepped].count("ok") == 1, (answered, stepped)
            if answered == "ok":
                assert after.status == InterruptStatus.RESOLVED
                assert [e["channel"] for e in accepted] == ["rest"]
                assert [e for e in trail if e.get("step") == step_no] == []
            elif kind == "assign":
                # reassigned away from her before her answer was taken
                assert answered == "NotAssignee"
                assert (after.status, after.assignees) == ("pending", ("group:managers",))
                assert accepted == []
            else:
                assert answered in ("AlreadyResolved", "InterruptExpired"), answered
                assert after.status == InterruptStatus.EXPIRED
                assert [e["actor"] for e in accepted] == ["expiry"]
        wins["answer" if stepped != "ok" else "step"] += 1
        if after.status != InterruptStatus.PENDING:
            # decided once: the run is due, and nothing is left for the deadline pass
            assert await aredis.zscore(store.keys.runs_due, after.run_id) is not None
            assert await aredis.zscore(store.keys.deadlines, iid) is None
    assert sum(wins.values()) == 12


# -- end to end: a real worker, a real webhook receiver -----------------------------------

SECRET = signing.new_secret()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with running() as r:
        yield r


@pytest.fixture(scope="module")
def laddered(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory, receiver: Receiver
) -> Iterator[Broker]:
    hooks = [
        {
            "id": "ladder",
            "url": f"{receiver.url}/ok/ladder",
            "secret": SECRET,
            "events": ["interrupt.reminded", "interrupt.assigned", "interrupt.expired"],
            "agents": ["escalating"],
        }
    ]
    b = Broker(
        redis_url,
        f"ibt{uuid.uuid4().hex[:10]}",
        tmp_path_factory.mktemp("escalation"),
        BROKER_EXPIRY_INTERVAL_S="0.05",
        BROKER_WEBHOOK_ALLOW_PRIVATE="1",
        BROKER_WEBHOOK_BACKOFF_S="0.05",
        BROKER_WEBHOOKS=json.dumps(hooks),
    )
    with b.serving():
        yield b


def _delivered(receiver: Receiver, etype: str, run_id: str) -> list[dict[str, Any]]:
    """The run's deliveries of ``etype``, each verified per Standard Webhooks."""
    out = []
    for r in receiver.at("/ok/ladder"):
        payload: dict[str, Any] = Webhook(SECRET).verify(r.body, r.headers)
        if payload["type"] == etype and payload["data"]["run_id"] == run_id:
            out.append(payload)
    return out


@pytest.mark.slow
def test_a_ladder_reminds_then_reassigns_then_resumes_with_the_default(
    laddered: Broker, receiver: Receiver
) -> None:
    with httpx.Client(base_url=laddered.url, timeout=30) as client:
        run = start(client, "escalating", {})
        # the ladder runs in about a second: the test looks at what it left, not at the
        # moments between steps
        reminded = wait_until(
            lambda: _delivered(receiver, "interrupt.reminded", run["run_id"]), "a reminder"
        )
        target = reminded[0]["data"]["interrupt"]
        assert [s.get("remind") or s.get("assign") for s in target["escalation"]["steps"]] == [
            True,
            ["group:managers"],
        ]
        assert target["expiry"] == {"on_expire": "resume", "default": EXPIRY_DEFAULT}

        data = reminded[0]["data"]
        assert data["interrupt_id"] == target["id"]
        assert (data["step"], data["assignees"]) == (0, ["user:first@example.com"])

        assigned = wait_until(
            lambda: _delivered(receiver, "interrupt.assigned", run["run_id"]), "reassignment"
        )
        data = assigned[0]["data"]
        assert data["interrupt_id"] == target["id"]
        assert data["previous_assignees"] == ["user:first@example.com"]
        assert data["assignees"] == ["group:managers"]
        assert data["by"]["actor"] == "escalation"

        done = wait_status(client, run["run_id"], "succeeded", "failed", "cancelled")
        assert done["status"] == "succeeded", done
        assert done["output"]["values"]["answer"] == EXPIRY_DEFAULT
        final = client.get(f"/interrupts/{target['id']}").json()
        assert final["status"] == "expired"
        assert final["assignees"] == ["group:managers"]
        assert final["resolution"]["channel"] == "expiry"
        assert final["escalation"]["done"] == 2
        wait_until(lambda: _delivered(receiver, "interrupt.expired", run["run_id"]), "the expiry")

        trail = client.get(f"/interrupts/{target['id']}/audit").json()["items"]
        assert [(e["actor"], e["outcome"]) for e in trail] == [
            ("escalation", "reminded"),
            ("escalation", "assigned"),
            ("expiry", "accepted"),
        ]


def _answered(broker: Broker, thread_id: str) -> int:
    r = redis.Redis.from_url(broker.env["REDIS_URL"])
    try:
        return int(r.get(f"{broker.env['BROKER_KEY_PREFIX']}:test:answered:{thread_id}") or 0)
    finally:
        r.close()


@pytest.mark.slow
@pytest.mark.parametrize("delay_s", [0.0, 0.15, 0.3, 0.45])
def test_a_person_answering_during_the_ladder_resumes_the_run_once(
    laddered: Broker, receiver: Receiver, delay_s: float
) -> None:
    """Answers land somewhere on the ladder (before or after the reassignment, or as the
    default comes): exactly one of the answer and the ladder's end decides, and the run
    resumes once with the winner."""
    with httpx.Client(base_url=laddered.url, timeout=30) as client:
        run = start(client, "escalating", {})
        reminded = wait_until(
            lambda: _delivered(receiver, "interrupt.reminded", run["run_id"]), "a reminder"
        )
        iid = reminded[0]["data"]["interrupt_id"]
        time.sleep(delay_s)
        answer = {"approved": True, "by": "person"}
        r = client.post(f"/interrupts/{iid}/resolve", json={"value": answer})
        assert r.status_code in (200, 409, 410), r.text
        done = wait_status(client, run["run_id"], "succeeded", "failed", "cancelled")
        assert done["status"] == "succeeded", done
        final = client.get(f"/interrupts/{iid}").json()
        if r.status_code == 200:
            assert final["status"] == "resolved"
            assert done["output"]["values"]["answer"] == answer
        else:
            assert final["status"] == "expired"
            assert done["output"]["values"]["answer"] == EXPIRY_DEFAULT
        assert _answered(laddered, run["thread_id"]) == 1
        trail = client.get(f"/interrupts/{iid}/audit").json()["items"]
        assert [e["outcome"] for e in trail].count("accepted") == 1
        # no step after the answer
        if r.status_code == 200:
            assert trail[-1]["outcome"] == "accepted" and trail[-1]["channel"] == "rest"
