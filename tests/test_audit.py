"""The audit log, at the channel contract every channel shares: another channel (AG-UI,
say) that calls ``channel.answer`` inside a request gets the request's principal checked
and every attempt recorded, without passing anything itself.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
import redis.asyncio as aioredis
from arq.connections import ArqRedis

from broker.core import audit, auth, channel, errors
from broker.core.codec import now_ms
from broker.core.records import Channel, InterruptStatus
from broker.core.settings import Settings
from broker.core.store import Store
from tests.stored import waiting

READER = auth.Principal(key_id="dash", scopes=frozenset({auth.READ}))
ANSWERER = auth.Principal("bot", frozenset({auth.RESOLVE}), agents=frozenset({"a"}))
ELSEWHERE = auth.Principal("b-bot", frozenset({auth.RESOLVE}), agents=frozenset({"b"}))


async def _waiting(store: Store, value: Any) -> str:
    _, [iid] = await waiting(store, "a", value)
    return iid


async def _as(
    principal: auth.Principal, store: Store, queue: ArqRedis, iid: str, value: Any
) -> str:
    """Answers as the gate would have it: the principal bound, none passed."""
    token = auth.bind(principal)
    try:
        await channel.answer(store, queue, iid, value, channel=Channel.AGUI)
    except errors.BrokerError as exc:
        return exc.code
    finally:
        auth.unbind(token)
    return "ok"


async def test_every_attempt_is_recorded_with_actor_channel_time_and_payload_hash(
    aredis: aioredis.Redis, settings: Settings, queue: ArqRedis
) -> None:
    store = Store(aredis, settings)
    schema = {"type": "object", "required": ["ok"]}
    iid = await _waiting(store, {"type": "approval", "responseSchema": schema})

    assert await _as(READER, store, queue, iid, {"ok": True}) == "forbidden"
    assert await _as(ELSEWHERE, store, queue, iid, {"ok": True}) == "interrupt_not_found"
    assert await _as(ANSWERER, store, queue, iid, {"nope": 1}) == "invalid_answer"
    assert (await store.interrupt(iid)).status == InterruptStatus.PENDING
    assert await _as(ANSWERER, store, queue, iid, {"ok": True}) == "ok"
    assert await _as(ANSWERER, store, queue, iid, {"ok": False}) == "already_resolved"

    trail = await audit.read(aredis, store.keys, iid)
    # a key that cannot see the interrupt leaves no trace: it cannot flood the log
    assert [(e["key_id"], e["channel"], e["outcome"]) for e in trail] == [
        ("dash", "agui", "forbidden"),
        ("bot", "agui", "invalid_answer"),
        ("bot", "agui", "accepted"),
        ("bot", "agui", "already_resolved"),
    ]
    assert all(e["at"].endswith("Z") and e["actor"] == e["key_id"] for e in trail)
    canonical = json.dumps({"ok": True}, sort_keys=True, separators=(",", ":"))
    assert trail[2]["payload_sha256"] == hashlib.sha256(canonical.encode()).hexdigest()
    resolution = (await store.interrupt(iid)).resolution or {}
    assert (resolution["key_id"], resolution["channel"]) == ("bot", "agui")


async def test_the_log_is_capped(
    aredis: aioredis.Redis, settings: Settings, queue: ArqRedis
) -> None:
    store = Store(aredis, settings.model_copy(update={"audit_max": 5}))
    iid = await _waiting(store, {"type": "approval"})
    for n in range(8):
        await _as(READER, store, queue, iid, n)
    trail = await audit.read(aredis, store.keys, iid)
    assert len(trail) == 5


async def test_a_thousand_and_one_refusals_never_evict_the_accepted_entry(
    aredis: aioredis.Redis, settings: Settings, queue: ArqRedis
) -> None:
    assert settings.audit_max == 1000  # the default cap
    store = Store(aredis, settings)
    iid = await _waiting(store, {"type": "approval"})
    assert await _as(READER, store, queue, iid, "early") == "forbidden"
    assert await _as(ANSWERER, store, queue, iid, True) == "ok"
    for n in range(1001):
        assert await _as(ANSWERER, store, queue, iid, n) == "already_resolved"
    # a key that cannot see the interrupt leaves no entry, however often it tries
    for n in range(50):
        assert await _as(ELSEWHERE, store, queue, iid, n) == "interrupt_not_found"

    trail = await audit.read(aredis, store.keys, iid)
    # the newest 1000 entries, and the accepted one before them; the early refusal,
    # older than everything kept, is gone
    assert len(trail) == 1001
    assert trail[0]["outcome"] == "accepted"
    assert trail[0]["payload_sha256"] == audit.payload_sha256(True)
    assert [e["outcome"] for e in trail[1:]] == ["already_resolved"] * 1000
    assert trail[-1]["payload_sha256"] == audit.payload_sha256(1000)
    assert all(e["key_id"] == "bot" for e in trail)


async def test_the_accepted_entry_keeps_its_place_while_the_log_holds_it(
    aredis: aioredis.Redis, settings: Settings, queue: ArqRedis
) -> None:
    store = Store(aredis, settings.model_copy(update={"audit_max": 5}))
    iid = await _waiting(store, {"type": "approval"})
    for n in range(2):
        await _as(READER, store, queue, iid, n)
    await _as(ANSWERER, store, queue, iid, True)
    await _as(ANSWERER, store, queue, iid, 1)
    outcomes = [e["outcome"] for e in await audit.read(aredis, store.keys, iid)]
    assert outcomes == ["forbidden", "forbidden", "accepted", "already_resolved"]
    for n in range(3):
        await _as(ANSWERER, store, queue, iid, n)
    outcomes = [e["outcome"] for e in await audit.read(aredis, store.keys, iid)]
    # capped at 5 by dropping the oldest refusals; the accepted one is never dropped
    assert outcomes == ["accepted"] + ["already_resolved"] * 4
    for n in range(3):
        await _as(ANSWERER, store, queue, iid, n)
    outcomes = [e["outcome"] for e in await audit.read(aredis, store.keys, iid)]
    assert outcomes == ["accepted"] + ["already_resolved"] * 5


async def test_the_deadline_that_decided_is_kept_like_an_answer(
    aredis: aioredis.Redis, settings: Settings, queue: ArqRedis
) -> None:
    store = Store(aredis, settings.model_copy(update={"audit_max": 3}))
    deadline = now_ms() + 60_000
    _, [iid] = await waiting(
        store,
        "a",
        {"type": "approval"},
        expires_at_ms=deadline,
        on_expire="resume",
        expiry_default=False,
    )
    assert await channel.expire(store, queue, iid, deadline)
    for n in range(5):
        assert await _as(ANSWERER, store, queue, iid, n) == "interrupt_expired"
    trail = await audit.read(aredis, store.keys, iid)
    assert [(e["channel"], e["outcome"]) for e in trail] == [("expiry", "accepted")] + [
        ("agui", "interrupt_expired")
    ] * 3


async def test_callers_outside_a_request_act_as_the_broker(
    aredis: aioredis.Redis, settings: Settings, queue: ArqRedis
) -> None:
    store = Store(aredis, settings)
    iid = await _waiting(store, {"type": "approval"})
    resolved = await channel.answer(
        store, queue, iid, 1, channel=Channel.REST, resolved_by="script"
    )
    assert resolved["resolution"]["key_id"] is None
    [entry] = await audit.read(aredis, store.keys, iid)
    assert (entry["actor"], entry["outcome"]) == ("script", "accepted")


@pytest.mark.parametrize("value", [None, 0, "x", [1, {"b": 2, "a": 1}]])
def test_payload_hash_is_of_canonical_json(value: Any) -> None:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
    assert audit.payload_sha256(value) == hashlib.sha256(canonical.encode()).hexdigest()
