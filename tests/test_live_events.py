"""Live events over real SSE and WebSocket clients, against real processes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aioredis
from websockets.asyncio.client import connect

from broker.core.keys import Keys
from broker.core.records import RunRecord, RunStatus
from broker.core.settings import Settings
from broker.core.store import Store
from tests.flow import next_interrupt, start, wait_status
from tests.harness import Broker

pytestmark = pytest.mark.slow


async def sse_events(
    client: httpx.AsyncClient, run_id: str, last_id: str | None, stop: int | None
) -> tuple[list[dict[str, Any]], bool]:
    """Reads SSE events; disconnects after ``stop`` events. Returns (events, ended)."""
    headers = {"Last-Event-ID": last_id} if last_id else {}
    got: list[dict[str, Any]] = []
    async with client.stream("GET", f"/runs/{run_id}/events", headers=headers) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        async for line in r.aiter_lines():
            if line.startswith(":"):
                continue
            if line == "":
                if fields:
                    event = json.loads(fields["data"])
                    assert event["id"] == fields["id"]
                    assert event["type"] == fields["event"]
                    got.append(event)
                    fields = {}
                    # a partial read ends early, and always at a pause, so the test can
                    # answer the interrupt before it reconnects
                    paused = event["type"] == "run.interrupted"
                    if stop is not None and (len(got) >= stop or paused):
                        return got, False
                continue
            key, _, value = line.partition(": ")
            fields[key] = value
    return got, True


def _run(run_id: str, thread_id: str, agent_id: str) -> RunRecord:
    return RunRecord(id=run_id, thread_id=thread_id, agent_id=agent_id, status=RunStatus.RUNNING)


def _stored(redis_url: str, broker: Broker, run_id: str) -> list[str]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        keys = Keys(broker.env["BROKER_KEY_PREFIX"])
        return [e.partition(" ")[0] for e in client.lrange(keys.run_events(run_id), 0, -1)]
    finally:
        client.close()


def test_sse_reconnects_with_last_event_id_and_misses_nothing(
    api: httpx.Client, broker: Broker, redis_url: str
) -> None:
    run = start(
        api,
        "scheduling",
        {"messages": [{"role": "user", "content": "Book a call with Alice about the Q3 roadmap"}]},
    )

    async def follow() -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        last: str | None = None
        async with httpx.AsyncClient(base_url=broker.url, timeout=60) as client:
            # drop the connection after every two events, mid-run
            while True:
                part, ended = await sse_events(client, run["run_id"], last, stop=2)
                seen += part
                if part:
                    last = part[-1]["id"]
                if ended:
                    return seen
                if part[-1]["type"] == "run.interrupted":
                    slots = next_interrupt(api, run["run_id"])
                    choice = slots["value"]["slots"][0]
                    api.post(
                        f"/interrupts/{slots['id']}/resolve",
                        json={
                            "value": {"chosen_time": choice["iso"], "chosen_label": choice["label"]}
                        },
                    )

    seen = asyncio.run(follow())
    ids = [e["id"] for e in seen]
    assert ids == _stored(redis_url, broker, run["run_id"])  # every event, once, in order
    types = [e["type"] for e in seen]
    assert types[0] == "run.queued"
    assert types[-1] == "run.succeeded"
    for expected in (
        "run.started",
        "interrupt.created",
        "run.interrupted",
        "interrupt.resolved",
        "run.resumed",
        "message.completed",
    ):
        assert expected in types
    assert any(e["type"] == "message.delta" for e in seen)  # the model's tokens
    tool_results = [
        e["data"]["message"]["content"]
        for e in seen
        if e["type"] == "message.completed" and e["data"]["message"]["type"] == "tool"
    ]
    assert len(tool_results) == 1 and tool_results[0].startswith("Meeting scheduled for")
    for e in seen:
        assert e["run_id"] == run["run_id"]
        assert e["thread_id"] == run["thread_id"]
        assert e["agent_id"] == "scheduling"
        assert isinstance(e["ts"], int)


def test_sse_of_a_finished_run_replays_and_ends(api: httpx.Client, broker: Broker) -> None:
    run = start(api, "counter", {})
    target = next_interrupt(api, run["run_id"])
    api.post(f"/interrupts/{target['id']}/resolve", json={"value": 1})
    wait_status(api, run["run_id"], "succeeded")

    async def read() -> tuple[list[dict[str, Any]], bool]:
        async with httpx.AsyncClient(base_url=broker.url, timeout=30) as client:
            return await sse_events(client, run["run_id"], None, None)

    events, ended = asyncio.run(read())
    assert ended and events[-1]["type"] == "run.succeeded"
    bad = api.get(f"/runs/{run['run_id']}/events", headers={"Last-Event-ID": "nonsense"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cursor"
    assert api.get("/runs/nope/events").status_code == 404


async def ws_messages(url: str, until: Any, limit: int = 500) -> AsyncIterator[dict[str, Any]]:
    async with connect(url) as ws:
        for _ in range(limit):
            msg = json.loads(await asyncio.wait_for(ws.recv(), 60))
            yield msg
            if until(msg):
                return


def test_websocket_reconnect_with_after_misses_nothing(api: httpx.Client, broker: Broker) -> None:
    ws_url = broker.url.replace("http", "ws") + "/ws"
    run = start(api, "naming", {"messages": [{"role": "user", "content": "hi"}]})

    async def follow() -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        last = "0"
        answers = iter([True, "Ada"])
        while True:
            url = f"{ws_url}?run_id={run['run_id']}&after={last}"
            async for msg in ws_messages(
                url, lambda m: m["type"] in ("run.interrupted", "run.succeeded")
            ):
                if "id" in msg and msg["type"] not in ("live", "gap"):
                    seen.append(msg)
                    last = msg["id"]
            if seen[-1]["type"] == "run.succeeded":
                return seen
            # answer while disconnected: the events produced meanwhile must arrive on reconnect
            iid = seen[-1]["data"]["interrupt_ids"][0]
            assert (
                api.post(f"/interrupts/{iid}/resolve", json={"value": next(answers)}).status_code
                == 200
            )
            await asyncio.sleep(0)

    seen = asyncio.run(follow())
    ids = [m["id"] for m in seen]
    assert len(ids) == len(set(ids))
    assert ids == sorted(ids, key=lambda i: tuple(int(x) for x in i.split("-")))
    types = [m["type"] for m in seen]
    assert types.count("run.interrupted") == 2
    assert types.count("interrupt.created") == 2
    assert types.count("interrupt.resolved") == 2
    assert types[0] == "run.queued" and types[-1] == "run.succeeded"
    assert all(t.split(".")[0] in ("run", "interrupt") for t in types)  # default kinds


def test_fifty_websocket_subscribers_all_get_the_interrupt(
    api: httpx.Client, broker: Broker
) -> None:
    ws_url = broker.url.replace("http", "ws") + "/ws?agent_id=counter&type=approval"

    async def scenario() -> list[dict[str, Any]]:
        conns = [await connect(ws_url) for _ in range(50)]
        try:
            for c in conns:  # every subscriber is live before the run starts
                assert json.loads(await asyncio.wait_for(c.recv(), 30))["type"] == "live"
            run = await asyncio.to_thread(start, api, "counter", {})

            async def first(c: Any) -> dict[str, Any]:
                while True:
                    msg = json.loads(await asyncio.wait_for(c.recv(), 60))
                    if msg.get("run_id") == run["run_id"] and msg["type"] == "interrupt.created":
                        return msg

            return await asyncio.gather(*(first(c) for c in conns))
        finally:
            for c in conns:
                await c.close()

    got = asyncio.run(scenario())
    assert len(got) == 50
    assert len({m["data"]["interrupt_id"] for m in got}) == 1
    assert all(m["data"]["type"] == "approval" for m in got)


def test_a_slow_subscriber_is_dropped_and_the_others_keep_going(
    redis_url: str, prefix: str, tmp_path: Any
) -> None:
    b = Broker(redis_url, prefix, tmp_path, BROKER_SUBSCRIBER_QUEUE_MAX="3")
    try:
        b.start_api()
        base = b.url.replace("http", "ws")

        async def scenario() -> tuple[dict[str, Any], int | None, dict[str, Any]]:
            slow = await connect(f"{base}/ws?events=run")
            other = await connect(f"{base}/ws?events=run&agent_id=quiet")
            for c in (slow, other):
                assert json.loads(await c.recv())["type"] == "live"
            client = aioredis.Redis.from_url(redis_url, decode_responses=True)
            store = Store(client, Settings(redis_url=redis_url, key_prefix=prefix))
            burst = _run("r-burst", "t", "busy")
            async with client.pipeline(transaction=True) as pipe:
                for n in range(50):  # one atomic burst: the reader sees it in one batch
                    await store.emit(burst, "run.started", client=pipe, n=n)
                await pipe.execute()
            await store.emit(_run("r-quiet", "t2", "quiet"), "run.started")
            await client.aclose()
            msgs = []
            while True:
                msg = json.loads(await asyncio.wait_for(slow.recv(), 30))
                msgs.append(msg)
                if msg["type"] == "error":
                    break
            await asyncio.wait_for(slow.wait_closed(), 30)
            code = slow.close_code
            other_msg = json.loads(await asyncio.wait_for(other.recv(), 30))
            await other.close()
            return msgs[-1], code, other_msg

        err, code, other_msg = asyncio.run(scenario())
        assert err["code"] == "slow_consumer"
        assert "reconnect" in err["message"]
        assert "resume_from" in err
        assert code == 1013
        assert other_msg["run_id"] == "r-quiet"
    finally:
        b.stop()
