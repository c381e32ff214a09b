"""The Python client's ``AsyncClient`` (clients/python) against a real broker: every
public route, awaited, with a run's event stream cut and followed again, live events
over the WebSocket, action links, webhook subscriptions, the AG-UI endpoint and the
service routes. The module's last test checks that its requests reached every public
route of the broker (``Client``: tests/test_python_client.py)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
from interrupt_broker_client import (
    AsyncClient,
    Event,
    Interrupt,
    NotFound,
    verify_webhook,
)
from prometheus_client.parser import text_string_to_metric_families

from broker.core import signing
from tests.client_broker import UNDO_AGENT, client_broker
from tests.client_faults import CuttingTransport
from tests.client_recording import Recorder, coverage_report, require_whole_module
from tests.harness import Broker, wait_until
from tests.receiver import Receiver, running

pytestmark = pytest.mark.slow

SECRET = signing.new_secret()
HOOK = "/ok/pyclient-async"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with running() as r:
        yield r


@pytest.fixture(scope="module")
def broker(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory, receiver: Receiver
) -> Iterator[Broker]:
    b = client_broker(
        redis_url,
        tmp_path_factory.mktemp("pyclient-async"),
        "pyclient-async",
        receiver.url + HOOK,
        SECRET,
    )
    with b.serving():
        yield b


@pytest.fixture(scope="module")
def seen() -> Iterator[Recorder]:
    """Every request the module's clients send."""
    with Recorder().websockets() as r:
        yield r


def assert_whole_log(seen: list[Event], log: list[Event]) -> None:
    ids = [e["id"] for e in seen]
    assert len(ids) == len(set(ids)), "an event came twice"
    assert ids == [e["id"] for e in log], "an event is missing or out of order"
    assert seen == log


async def test_runs_interrupts_and_live_events_through_the_async_client(
    broker: Broker, receiver: Receiver, seen: Recorder
) -> None:
    stream = CuttingTransport(lambda r: r.url.path.endswith("/events"), chunks=2)
    hooks = seen.async_hooks()
    async with AsyncClient(broker.url, transport=stream, event_hooks=hooks) as client:
        assert "counter" in {a["agent_id"] for a in await client.list_agents()}
        key = str(uuid.uuid4())
        run = await client.start_run("counter", idempotency_key=key)
        assert await client.start_run("counter", idempotency_key=key) == run
        seen: list[Event] = []
        async for event in client.run_events(run["run_id"]):
            seen.append(event)
            if event["type"] == "run.interrupted":
                pending = (await client.list_interrupts(run_id=run["run_id"])).items
                fetched = await client.get_interrupt(pending[0]["id"])
                moved = await client.assign(fetched.interrupt["id"], ["group:ops"])
                assert moved["assignees"] == ["group:ops"]
                await client.assign(fetched.interrupt["id"], [])
                await client.resolve(fetched.interrupt["id"], True, if_match=fetched.etag)
        assert stream.chosen >= 2, "the stream was never cut and followed again"
        assert_whole_log(seen, [e async for e in client.run_events(run["run_id"])])
        assert (await client.get_run(run["run_id"]))["status"] == "succeeded"
        audit = await client.audit(fetched.interrupt["id"])
        assert [e["outcome"] for e in audit].count("accepted") == 1
        assert run["run_id"] in [r["run_id"] async for r in client.iter_runs(limit=1)]
        assert run["run_id"] == (await client.list_runs(limit=1)).items[0]["run_id"]

        # live over WS: two questions asked, answered in one bulk answer, then a cancel
        live: list[Event] = []
        thread = f"t-{uuid.uuid4().hex[:8]}"

        async def watch() -> None:
            # from the stream's start: the run's events, whenever the follower subscribes
            async for event in client.follow(thread_id=thread, after="0"):
                live.append(event)
                if event["type"] == "run.cancelled":
                    return

        watcher = asyncio.create_task(watch())
        first = await client.start_run("counter", thread_id=thread)
        asked = await _async_paused(client, first["run_id"])
        ids = [i["id"] async for i in client.iter_interrupts(thread_id=thread, limit=1)]
        assert ids == [asked["id"]]
        bulk = await client.resolve_many(True, ids=ids)
        assert bulk["accepted"] == 1
        assert await _async_finished(client, first["run_id"]) == "succeeded"
        held = await client.start_run(UNDO_AGENT)
        question = await _async_paused(client, held["run_id"])
        assert (await client.resolve(question["id"], True))["status"] == "accepted"
        assert (await client.withdraw(question["id"]))["status"] == "pending"
        second = await client.start_run("counter", thread_id=thread)
        await _async_paused(client, second["run_id"])
        await client.cancel_run(second["run_id"])
        await asyncio.wait_for(watcher, 60)
        await client.cancel_run(held["run_id"])
        kinds = [e["type"] for e in live]
        assert kinds.count("interrupt.created") == 2 and kinds[-1] == "run.cancelled"
        assert "run.succeeded" in kinds

        with pytest.raises(NotFound):
            await client.get_interrupt("no-such-interrupt")
        link_run = await client.start_run("counter")
        link_question = await _async_paused(client, link_run["run_id"])
        delivered = wait_until(
            lambda: [
                r
                for r in receiver.at(HOOK)
                if json.loads(r.body)["data"].get("interrupt_id") == link_question["id"]
            ],
            "a delivery",
        )
        links = verify_webhook(SECRET, delivered[0].body, delivered[0].headers)["data"]["links"]
        assert (await client.show_link(links[0])).ok
        assert (await client.answer_link(links, "reject")).ok
        assert (await client.show_link(links[0]["url"])).status == 409
        resolution = (await client.get_interrupt(link_question["id"])).interrupt["resolution"]
        assert resolution is not None and resolution["resolved_by"] == "link:reject"


async def _async_paused(client: AsyncClient, run_id: str) -> Interrupt:
    for _ in range(3000):
        pending = (await client.list_interrupts(run_id=run_id)).items
        if pending and (await client.get_run(run_id))["status"] == "interrupted":
            return pending[0]
        await asyncio.sleep(0.02)
    raise AssertionError(f"run {run_id} never stopped on an interrupt")


async def _async_finished(client: AsyncClient, run_id: str) -> str:
    for _ in range(3000):
        status = (await client.get_run(run_id))["status"]
        if status in ("succeeded", "failed", "cancelled"):
            return status
        await asyncio.sleep(0.02)
    raise AssertionError(f"run {run_id} never ended")


async def test_service_routes_webhooks_and_agui_through_the_async_client(
    broker: Broker, receiver: Receiver, seen: Recorder
) -> None:
    async with AsyncClient(broker.url, event_hooks=seen.async_hooks()) as client:
        assert await client.health() == {"status": "ok"}
        assert (await client.ready())["status"] == "ready"
        families = text_string_to_metric_families(await client.metrics())
        alive = next(f for f in families if f.name == "broker_workers_alive")
        assert alive.samples[0].value == 1
        assert (await client.auth_config())["oidc"] is None
        assert [k["kid"] for k in (await client.jwks())["keys"]] == ["test"]

        made = await client.create_webhook(receiver.url + "/ok/managed-async", secret=None)
        sid = made["id"]
        assert (await client.get_webhook(sid))["url"].endswith("/ok/managed-async")
        assert (await client.update_webhook(sid, enabled=False))["enabled"] is False
        assert sid in {w["id"] for w in await client.list_webhooks()}
        assert await client.webhook_deliveries(sid) == []
        await client.delete_webhook(sid)
        with pytest.raises(NotFound):
            await client.get_webhook(sid)

        thread = f"t-{uuid.uuid4().hex[:8]}"
        said = [{"id": f"u-{thread}", "role": "user", "content": "hi"}]
        events = [e async for e in client.agui("naming", {"threadId": thread, "messages": said})]
        assert events[0]["type"] == "RUN_STARTED" and events[-1]["type"] == "RUN_FINISHED"
        assert events[0]["threadId"] == thread and events[0]["runId"]
        [custom] = [e for e in events if e["type"] == "CUSTOM"]
        assert json.loads(custom["value"])["type"] == "approval"
        resume = {"command": {"resume": True}}
        answered = [
            e
            async for e in client.agui(
                "naming", {"threadId": thread, "messages": said, "forwardedProps": resume}
            )
        ]
        customs = [json.loads(e["value"]) for e in answered if e["type"] == "CUSTOM"]
        assert [c["type"] for c in customs] == ["ask"]
        with pytest.raises(NotFound) as unknown:
            await anext(client.agui("nobody", {"threadId": thread, "messages": said}))
        assert unknown.value.code == "agent_not_found"


async def test_the_module_reached_every_public_route_through_the_async_client(
    broker: Broker, seen: Recorder, request: pytest.FixtureRequest
) -> None:
    """Last in the module: every route the broker serves (its OpenAPI document, and
    ``WS /ws``) was reached by a request of ``AsyncClient`` in the tests above."""
    require_whole_module(request)
    async with httpx.AsyncClient(base_url=broker.url, timeout=30) as plain:
        spec = (await plain.get("/openapi.json")).json()
    missing = seen.unreached(spec)
    assert missing == [], coverage_report(missing)
