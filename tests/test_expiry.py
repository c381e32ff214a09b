"""Deadlines: the default answer resumes the run, or the run fails or is cancelled, as
declared; a late answer is 410; a person's answer racing the deadline has one winner.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aioredis
from arq.connections import ArqRedis

from broker.core import channel, expiry
from broker.core.codec import loads, now_ms
from broker.core.keys import Keys
from broker.core.records import Channel, InterruptStatus
from broker.core.settings import Settings
from broker.core.store import Attempt, Store
from tests.flow import next_interrupt, start, wait_status
from tests.graphs import EXPIRY_DEFAULT
from tests.harness import Broker
from tests.stored import raised

RULES = [
    # counter's approval, configured rather than declared: cancel the run at the deadline
    {"agent": "counter", "type": "approval", "expires_in": 1, "on_expire": "cancel"}
]


@pytest.fixture(scope="module")
def timed(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    p = f"ibt{uuid.uuid4().hex[:10]}"
    b = Broker(
        redis_url,
        p,
        tmp_path_factory.mktemp("expiry"),
        BROKER_EXPIRY=json.dumps(RULES),
        BROKER_EXPIRY_INTERVAL_S="0.05",
    )
    with b.serving():
        yield b


@pytest.fixture
def client(timed: Broker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=timed.url, timeout=30) as c:
        yield c


def _answered(redis_url: str, broker: Broker, thread_id: str) -> int:
    r = redis.Redis.from_url(redis_url)
    try:
        return int(r.get(f"{broker.env['BROKER_KEY_PREFIX']}:test:answered:{thread_id}") or 0)
    finally:
        r.close()


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@pytest.mark.slow
def test_expiry_with_a_default_resumes_the_run_with_the_default(
    client: httpx.Client, timed: Broker, redis_url: str
) -> None:
    run = start(client, "expiring", {})
    target = next_interrupt(client, run["run_id"])
    assert target["expires_at"] is not None
    assert target["expiry"] == {"on_expire": "resume", "default": EXPIRY_DEFAULT}

    done = wait_status(client, run["run_id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done
    assert done["output"]["values"]["answer"] == EXPIRY_DEFAULT
    assert _answered(redis_url, timed, run["thread_id"]) == 1

    expired = client.get(f"/interrupts/{target['id']}").json()
    assert expired["status"] == "expired"
    assert expired["resolution"]["value"] == EXPIRY_DEFAULT
    assert expired["resolution"]["channel"] == "expiry"
    listed = client.get("/interrupts", params={"status": "expired", "run_id": run["run_id"]})
    assert [i["id"] for i in listed.json()["items"]] == [target["id"]]

    late = client.post(f"/interrupts/{target['id']}/resolve", json={"value": True})
    assert late.status_code == 410
    assert late.json()["error"]["code"] == "interrupt_expired"

    trail = client.get(f"/interrupts/{target['id']}/audit").json()["items"]
    assert [(e["channel"], e["outcome"]) for e in trail] == [
        ("expiry", "accepted"),
        ("rest", "interrupt_expired"),
    ]
    events = [e["type"] for e in _run_events(redis_url, timed, run["run_id"])]
    assert "interrupt.expired" in events
    assert events.index("interrupt.expired") < events.index("run.resumed")


def _run_events(redis_url: str, broker: Broker, run_id: str) -> list[dict[str, Any]]:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        log = Keys(broker.env["BROKER_KEY_PREFIX"]).run_events(run_id)
        return [json.loads(e.partition(" ")[2]) for e in r.lrange(log, 0, -1)]
    finally:
        r.close()


@pytest.mark.slow
def test_expiry_without_a_default_fails_the_run(client: httpx.Client) -> None:
    run = start(client, "expiring_fail", {})
    target = next_interrupt(client, run["run_id"])
    done = wait_status(client, run["run_id"], "failed", "succeeded")
    assert done["status"] == "failed"
    assert target["id"] in done["error"]["message"]
    assert "expired" in done["error"]["message"]
    assert client.get(f"/interrupts/{target['id']}").json()["status"] == "expired"


@pytest.mark.slow
def test_configured_expiry_can_cancel_the_run(client: httpx.Client) -> None:
    run = start(client, "counter", {})
    target = next_interrupt(client, run["run_id"])
    assert target["expiry"]["on_expire"] == "cancel"
    done = wait_status(client, run["run_id"], "cancelled", "succeeded", "failed")
    assert done["status"] == "cancelled"
    assert client.get(f"/interrupts/{target['id']}").json()["status"] == "expired"


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(3))
def test_expiry_racing_twenty_answers_has_one_winner(
    client: httpx.Client, timed: Broker, redis_url: str, round_: int
) -> None:
    run = start(client, "expiring", {})
    target = next_interrupt(client, run["run_id"])
    deadline = _epoch(target["expires_at"])
    url = f"/interrupts/{target['id']}/resolve"

    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=timed.url, timeout=30) as c:

            async def answer(n: int) -> httpx.Response:
                # spread across the deadline: some before it, some after
                await asyncio.sleep(max(0.0, deadline - time.time() - 0.1 + n * 0.01))
                return await c.post(url, json={"value": {"approved": True, "by": f"u{n}"}})

            return await asyncio.gather(*(answer(n) for n in range(20)))

    responses = asyncio.run(race())
    wins = [r.json() for r in responses if r.status_code == 200]
    assert all(r.status_code in (200, 409, 410) for r in responses)
    assert len(wins) <= 1
    done = wait_status(client, run["run_id"], "succeeded", "failed")
    assert done["status"] == "succeeded"
    final = client.get(f"/interrupts/{target['id']}").json()
    if wins:
        assert final["status"] == "resolved"
        assert final["resolution"] == wins[0]["resolution"]
    else:
        assert final["status"] == "expired"
        assert final["resolution"]["channel"] == "expiry"
    assert done["output"]["values"]["answer"] == final["resolution"]["value"]
    assert _answered(redis_url, timed, run["thread_id"]) == 1
    trail = client.get(f"/interrupts/{target['id']}/audit").json()["items"]
    assert [e["outcome"] for e in trail].count("accepted") == 1


# The store path itself, with the clock past the deadline for the expiry only: both
# sides pass their deadline checks, so only the pending-status check decides.


async def _waiting(store: Store, value: dict[str, Any]) -> str:
    run = await store.create_run("expiring", None, {}, {})
    begun = await store.begin_attempt(run.id, "", "j")
    assert isinstance(begun, Attempt)
    exp = expiry.policy(value, "expiring", None, None)
    assert exp is not None
    pending = raised(
        begun.run,
        value,
        expires_at_ms=now_ms() + int(exp.expires_in_s * 1000),
        on_expire=exp.on_expire,
        expiry_default=exp.default,
    )
    [iid] = await store.record_interrupts(begun.run, [pending], [], job_id="j")
    return iid


@pytest.mark.parametrize("round_", range(5))
async def test_expire_and_twenty_answers_race_with_one_winner(
    aredis: aioredis.Redis, settings: Settings, queue: ArqRedis, round_: int
) -> None:
    store = Store(aredis, settings)
    iid = await _waiting(store, {"type": "approval", "expires_in": 60, "default": "D"})
    h = await store.interrupt(iid)
    assert h.expires_at_ms is not None
    assert await aredis.zscore(store.keys.deadlines, iid) == h.expires_at_ms

    async def human(n: int) -> str:
        try:
            await channel.answer(
                store, queue, iid, f"v{n}", channel=Channel.REST, resolved_by=f"u{n}"
            )
        except Exception as exc:
            return type(exc).__name__
        return "ok"

    async def deadline() -> str:
        return "ok" if await channel.expire(store, queue, iid, h.expires_at_ms) else "lost"

    tasks = [human(n) for n in range(20)]
    tasks.insert(round_ * 4, deadline())
    outcomes = await asyncio.gather(*tasks)
    assert outcomes.count("ok") == 1, outcomes
    after = await store.interrupt(iid)
    resolution = after.resolution or {}
    if outcomes[round_ * 4] == "ok":
        assert after.status == InterruptStatus.EXPIRED
        assert resolution["value"] == "D"
        assert set(outcomes) - {"ok"} <= {"AlreadyResolved", "InterruptExpired"}
    else:
        assert after.status == InterruptStatus.RESOLVED
        assert resolution["channel"] == "rest"
    assert await aredis.zscore(store.keys.runs_due, after.run_id) is not None
    assert await aredis.zscore(store.keys.deadlines, iid) is None
    trail = [loads(x) for x in await aredis.lrange(store.keys.audit(iid), 0, -1)]
    assert [e["outcome"] for e in trail].count("accepted") == 1
    # every human attempt, plus the expiry when it won
    assert len(trail) == 20 + (after.status == InterruptStatus.EXPIRED)


async def test_an_expiry_before_its_deadline_changes_nothing(
    aredis: aioredis.Redis, settings: Settings, queue: ArqRedis
) -> None:
    store = Store(aredis, settings)
    iid = await _waiting(store, {"type": "approval", "expires_in": 60, "default": "D"})
    before = await store.interrupt(iid)
    assert before.expires_at_ms is not None
    assert not await channel.expire(store, queue, iid, before.expires_at_ms - 1)
    assert await store.interrupt(iid) == before


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"expires_in": 5, "default": None}, ("resume", None)),
        ({"expires_in": 5, "default": {"ok": False}}, ("resume", {"ok": False})),
        ({"expires_in": 5}, ("fail", None)),
        ({"expires_in": 5, "on_expire": "cancel"}, ("cancel", None)),
    ],
)
def test_declared_expiry(value: dict[str, Any], expected: tuple[str, Any]) -> None:
    exp = expiry.policy(value, "a", None, None)
    assert exp is not None
    assert (exp.on_expire, exp.default) == expected


def test_configured_rules_match_agent_and_type_and_the_value_wins() -> None:
    rules = Settings(
        expiry=json.dumps(
            [
                {"agent": "a", "type": "approval", "expires_in": 10, "default": True},
                {"agent": "a", "expires_in": 20, "on_expire": "cancel"},
            ]
        )
    ).expiry
    first = expiry.policy({"type": "approval"}, "a", "approval", rules)
    assert first is not None and (first.expires_in_s, first.default) == (10, True)
    second = expiry.policy({}, "a", "ask", rules)
    assert second is not None and second.on_expire == "cancel"
    assert expiry.policy({}, "b", "approval", rules) is None
    own = expiry.policy({"expires_in": 3, "default": 0}, "a", "approval", rules)
    assert own is not None and (own.expires_in_s, own.default) == (3, 0)


def test_unusable_rules_are_refused() -> None:
    for bad in ("{", "{}"):
        with pytest.raises(ValueError, match="BROKER_EXPIRY"):
            Settings(expiry=bad)
    for bad in ('[{"expires_in": 0}]', '[{"expires_in": 5, "on_expire": "later"}]', "[1]"):
        with pytest.raises(expiry.ExpiryConfigError):
            expiry.rules(Settings(expiry=bad).expiry)
