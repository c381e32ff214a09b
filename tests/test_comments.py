"""A comment on an answer: kept with the resolution and in the audit log, part of the
idempotency digest, and on a tool review the reason a reject gives the model."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from arq.connections import ArqRedis

from broker.core import audit, auth, channel, errors, shapes
from broker.core.records import Channel, InterruptStatus
from broker.core.settings import Settings
from broker.core.store import Store
from tests.flow import answer, next_interrupt, start, wait_status
from tests.stored import waiting

BOT = auth.Principal("bot", frozenset({auth.RESOLVE}))
REVIEW = {
    "action_requests": [
        {"name": "send_email", "args": {"to": "a@example.com"}},
        {"name": "delete_file", "args": {"path": "/tmp/x"}},
    ],
    "review_configs": [
        {"action_name": "send_email", "allowed_decisions": ["approve", "reject"]},
        {"action_name": "delete_file", "allowed_decisions": ["approve", "reject"]},
    ],
}


def test_a_comment_is_the_reason_of_each_reject_that_gives_none() -> None:
    decisions = {
        "decisions": [{"type": "reject"}, {"type": "reject", "message": "their own words"}]
    }
    assert shapes.with_reject_reason(REVIEW, decisions, "wrong recipient") == {
        "decisions": [
            {"type": "reject", "message": "wrong recipient"},
            {"type": "reject", "message": "their own words"},
        ]
    }
    approve = {"decisions": [{"type": "approve"}, {"type": "approve"}]}
    assert shapes.with_reject_reason(REVIEW, approve, "fine") == approve
    assert shapes.with_reject_reason(REVIEW, decisions, None) == decisions
    # one gated call (the middleware's per_call mode): the answer is the decision itself
    per_call = {"type": "tool_approval", "tool_call_id": "c1", "name": "t", "args": {}}
    assert shapes.with_reject_reason(per_call, {"type": "reject"}, "no") == {
        "type": "reject",
        "message": "no",
    }
    # any other kind of interrupt keeps its answer: the comment stays with the resolution
    assert shapes.with_reject_reason({"type": "approval"}, False, "no") is False
    assert shapes.with_reject_reason({"type": "ask"}, {"type": "reject"}, "no") == {
        "type": "reject"
    }


async def test_the_comment_is_kept_with_the_resolution_and_in_every_audit_entry(
    aredis: aioredis.Redis, settings: Settings, queue: ArqRedis
) -> None:
    store = Store(aredis, settings)
    schema = {"type": "boolean"}
    _, [iid] = await waiting(store, "a", {"type": "approval", "responseSchema": schema})

    with pytest.raises(errors.InvalidAnswer):
        await channel.answer(
            store, queue, iid, "yes", channel=Channel.REST, principal=BOT, comment="typo"
        )
    got = await channel.answer(
        store, queue, iid, False, channel=Channel.REST, principal=BOT, comment="not now\nsorry"
    )
    assert got["resolution"]["value"] is False
    assert got["resolution"]["comment"] == "not now\nsorry"
    h = await store.interrupt(iid)
    assert h.status == InterruptStatus.RESOLVED
    assert (h.resolution or {})["comment"] == "not now\nsorry"
    trail = await audit.read(aredis, store.keys, iid)
    assert [(e["outcome"], e["comment"]) for e in trail] == [
        ("invalid_answer", "typo"),
        ("accepted", "not now\nsorry"),
    ]


async def test_a_bad_comment_is_refused_and_changes_nothing(
    aredis: aioredis.Redis, settings: Settings, queue: ArqRedis
) -> None:
    store = Store(aredis, settings)
    _, [iid] = await waiting(store, "a", {"type": "approval"})
    for bad in ("x" * 2001, "bell\x07", "escape\x1b[31m", "c1\x85"):
        with pytest.raises(errors.InvalidRequest):
            await channel.answer(
                store, queue, iid, True, channel=Channel.REST, principal=BOT, comment=bad
            )
    assert (await store.interrupt(iid)).status == InterruptStatus.PENDING
    # each attempt audited, without the comment refused
    trail = await audit.read(aredis, store.keys, iid)
    assert [(e["outcome"], e.get("comment")) for e in trail] == [("invalid_request", None)] * 4
    # blank is none; tabs, line breaks and 2000 characters are fine
    got = await channel.answer(
        store, queue, iid, True, channel=Channel.REST, principal=BOT, comment="  \n "
    )
    assert got["resolution"]["comment"] is None
    assert "comment" not in (await audit.read(aredis, store.keys, iid))[-1]
    _, [other] = await waiting(store, "a", {"type": "approval"})
    text = "\t" + "y" * 1997 + "\r\n"
    got = await channel.answer(
        store, queue, other, True, channel=Channel.REST, principal=BOT, comment=text
    )
    assert got["resolution"]["comment"] == text


async def test_the_idempotency_key_covers_the_comment(
    aredis: aioredis.Redis, settings: Settings, queue: ArqRedis
) -> None:
    """docs/design.md, "Invariants" 1: a retry with the same key gets the same body; the
    same key with another comment is another answer."""
    store = Store(aredis, settings)
    _, [iid] = await waiting(store, "a", {"type": "approval"})

    async def send(comment: str | None) -> dict[str, Any]:
        return await channel.answer(
            store,
            queue,
            iid,
            True,
            channel=Channel.REST,
            principal=BOT,
            idempotency_key="k-1",
            comment=comment,
        )

    first = await send("looks right")
    assert await send("looks right") == first
    with pytest.raises(errors.IdempotencyKeyReused):
        await send("another reason")
    with pytest.raises(errors.IdempotencyKeyReused):
        await send(None)


# -- end to end: the REST route, the event, and the graph -------------------------------


@pytest.mark.slow
def test_rest_comment_shows_on_the_interrupt_its_audit_and_its_event(api: httpx.Client) -> None:
    run = start(api, "counter", {})
    target = next_interrupt(api, run["run_id"])
    bad = api.post(
        f"/interrupts/{target['id']}/resolve", json={"value": True, "comment": "x" * 2001}
    )
    assert bad.status_code == 422, bad.text
    assert api.get(f"/interrupts/{target['id']}").json()["status"] == "pending"

    headers = {"Idempotency-Key": "answer-1"}
    body = {"value": True, "comment": "checked with Ada"}
    first = api.post(f"/interrupts/{target['id']}/resolve", json=body, headers=headers)
    assert first.status_code == 200, first.text
    again = api.post(f"/interrupts/{target['id']}/resolve", json=body, headers=headers)
    assert again.json() == first.json()
    other = {**body, "comment": "checked with Grace"}
    reused = api.post(f"/interrupts/{target['id']}/resolve", json=other, headers=headers)
    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "idempotency_key_reused"

    shown = api.get(f"/interrupts/{target['id']}").json()
    assert shown["resolution"]["comment"] == "checked with Ada"
    trail = api.get(f"/interrupts/{target['id']}/audit").json()["items"]
    assert [(e["outcome"], e.get("comment")) for e in trail] == [
        ("invalid_request", None),  # an unreadable body is audited, without its comment
        ("accepted", "checked with Ada"),
        ("replayed", "checked with Ada"),
        ("idempotency_key_reused", "checked with Grace"),
    ]
    wait_status(api, run["run_id"], "succeeded")
    events = api.get(f"/runs/{run['run_id']}/events").text
    data = [json.loads(line[6:]) for line in events.splitlines() if line.startswith("data: ")]
    resolved = [e["data"] for e in data if e["type"] == "interrupt.resolved"]
    assert [e["resolution"]["comment"] for e in resolved] == ["checked with Ada"]


@pytest.mark.slow
def test_a_rejected_tool_call_gives_the_model_the_comment(api: httpx.Client) -> None:
    run = start(
        api,
        "tool_approval",
        {"messages": [{"role": "user", "content": "Send an email to bob@example.com about it"}]},
    )
    review = next_interrupt(api, run["run_id"])
    got = answer(
        api, review["id"], {"decisions": [{"type": "reject"}]}, comment="Bob left the company"
    )
    # the graph, the resolution and the audit see one answer
    stored = {"decisions": [{"type": "reject", "message": "Bob left the company"}]}
    assert got["resolution"]["value"] == stored
    assert got["resolution"]["comment"] == "Bob left the company"
    trail = api.get(f"/interrupts/{review['id']}/audit").json()["items"]
    assert trail[-1]["payload_sha256"] == audit.payload_sha256(stored)
    done = wait_status(api, run["run_id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done
    tools = [m for m in done["output"]["messages"] if m["type"] == "tool"]
    assert len(tools) == 1
    assert "with reason: Bob left the company" in tools[0]["content"]
    assert "sent" not in tools[0]["content"].lower()
