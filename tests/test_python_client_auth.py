"""The Python client (clients/python) against a broker with auth on: the key goes with
every request (REST, a run's SSE, the WebSocket), a key without a route's scope gets
``Forbidden`` with the broker's code, the open routes answer without one; webhook
subscriptions managed with an admin key, sync and async; and a client built on an
httpx client of the caller's own."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from interrupt_broker_client import (
    AsyncClient,
    Client,
    Forbidden,
    InvalidInput,
    NotFound,
    Retry,
    Unauthorized,
)

from broker.core import auth
from tests.harness import Broker, wait_until
from tests.principals import KeySpec, headers, keys_json, new_key
from tests.receiver import Receiver, running

pytestmark = pytest.mark.slow

KEYS: dict[str, KeySpec] = {
    "admin": (new_key("admin"), [auth.ADMIN], None),
    "reader": (new_key("reader"), [auth.READ], None),
    "starter": (new_key("starter"), [auth.RUNS_WRITE], None),
    "counter-reader": (new_key("counter-reader"), [auth.READ], ["counter"]),
}
ONCE = Retry(attempts=1)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with running() as r:
        yield r


@pytest.fixture(scope="module")
def broker(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    b = Broker(
        redis_url,
        f"ibt{uuid.uuid4().hex[:10]}",
        tmp_path_factory.mktemp("pyclient-admin"),
        BROKER_AUTH="on",
        BROKER_API_KEYS=keys_json(KEYS),
        BROKER_WEBHOOK_ALLOW_PRIVATE="1",
    )
    with b.serving():
        yield b


def _key(name: str) -> str:
    return KEYS[name][0]


def test_webhook_subscriptions_are_managed_and_their_deliveries_read(
    broker: Broker, receiver: Receiver
) -> None:
    with Client(broker.url, api_key=_key("admin")) as admin:
        made = admin.create_webhook(
            receiver.url + "/ok/admin", events=["run.completed"], agents=["counter"]
        )
        assert made["secret"].startswith("whsec_") and made["events"] == ["run.completed"]
        sid = made["id"]
        assert sid in {w["id"] for w in admin.list_webhooks()}
        assert "secret" not in admin.get_webhook(sid)
        changed = admin.update_webhook(sid, description="finished runs", enabled=True)
        assert changed["description"] == "finished runs"
        with pytest.raises(InvalidInput):
            admin.update_webhook(sid, events=["no.such.event"])

        run = admin.start_run("counter")
        wait_until(lambda: admin.get_run(run["run_id"])["status"] == "interrupted", "a question")
        [question] = admin.list_interrupts(run_id=run["run_id"]).items
        admin.resolve(question["id"], True)
        delivered = wait_until(
            lambda: [d for d in admin.webhook_deliveries(sid) if d["outcome"] == "delivered"],
            "the run.succeeded delivery",
        )
        assert delivered[0]["event"] == "run.succeeded" and delivered[0]["status_code"] == 200
        assert len(admin.webhook_deliveries(sid, limit=1)) == 1

        admin.delete_webhook(sid)
        with pytest.raises(NotFound):
            admin.get_webhook(sid)
        with pytest.raises(NotFound):
            admin.delete_webhook(sid)
    with Client(broker.url, api_key=_key("reader")) as reader, pytest.raises(Forbidden):
        reader.list_webhooks()


async def test_the_async_client_manages_them_too(broker: Broker, receiver: Receiver) -> None:
    async with AsyncClient(broker.url, api_key=_key("admin")) as admin:
        made = await admin.create_webhook(receiver.url + "/ok/admin-async", secret=None)
        sid = made["id"]
        assert (await admin.get_webhook(sid))["url"].endswith("/ok/admin-async")
        assert (await admin.update_webhook(sid, enabled=False))["enabled"] is False
        assert sid in {w["id"] for w in await admin.list_webhooks()}
        assert await admin.webhook_deliveries(sid) == []
        await admin.delete_webhook(sid)
        with pytest.raises(NotFound):
            await admin.get_webhook(sid)


def test_a_client_on_the_caller_s_own_httpx_client_leaves_it_open(broker: Broker) -> None:
    own = httpx.Client(base_url=broker.url, headers=headers(KEYS, "admin"), timeout=30)
    with Client(broker.url, http_client=own) as client:
        assert "counter" in {a["agent_id"] for a in client.list_agents()}
    # closing the broker client left the caller's client open and usable
    assert own.get("/healthz").status_code == 200
    own.close()


def test_the_key_goes_with_rest_sse_and_the_websocket(broker: Broker) -> None:
    sent: list[str | None] = []
    hooks = {"request": [lambda r: sent.append(r.headers.get("authorization"))]}
    with (
        Client(broker.url, api_key=_key("admin")) as admin,
        Client(broker.url, api_key=_key("reader"), event_hooks=hooks) as reader,
        Client(broker.url, retry=ONCE, reconnect=ONCE) as nobody,
    ):
        run = admin.start_run("counter")
        live = reader.follow(run_id=run["run_id"], after="0")  # WS /ws, with the key
        assert next(live)["run_id"] == run["run_id"]
        question = wait_until(
            lambda: reader.list_interrupts(run_id=run["run_id"]).items, "a question"
        )[0]
        admin.resolve(question["id"], True)
        events = list(reader.run_events(run["run_id"]))  # the run's SSE, with the key
        assert events[-1]["type"] == "run.succeeded"
        assert next(e for e in live if e["type"] == "run.succeeded")["id"] == events[-1]["id"]
        live.close()
        assert sent and set(sent) == {f"Bearer {_key('reader')}"}

        for refused in (
            nobody.list_agents,
            lambda: next(nobody.run_events(run["run_id"])),
            lambda: next(nobody.follow()),
            nobody.metrics,
        ):
            with pytest.raises(Unauthorized) as no_key:
                refused()
            assert (no_key.value.status, no_key.value.code) == (401, "unauthorized")
        # open routes answer without a key
        assert nobody.health() == {"status": "ok"}
        assert nobody.ready()["status"] == "ready"
        assert nobody.auth_config() == {"oidc": None}
        assert nobody.jwks()["keys"]


def test_a_key_without_the_scope_gets_forbidden_with_the_broker_s_code(broker: Broker) -> None:
    said = [{"id": "u-1", "role": "user", "content": "hi"}]
    with (
        Client(broker.url, api_key=_key("admin")) as admin,
        Client(broker.url, api_key=_key("reader")) as reader,
        Client(broker.url, api_key=_key("starter"), reconnect=ONCE) as starter,
        Client(broker.url, api_key=_key("counter-reader")) as limited,
    ):
        run = admin.start_run("counter")
        question = wait_until(
            lambda: admin.list_interrupts(run_id=run["run_id"]).items, "a question"
        )[0]
        refusals: list[tuple[str, Callable[[], object]]] = [
            (auth.RUNS_WRITE, lambda: reader.start_run("counter")),
            (auth.RESOLVE, lambda: reader.resolve(question["id"], True)),
            (
                auth.RUNS_WRITE,
                lambda: next(reader.agui("counter", {"threadId": "t", "messages": said})),
            ),
            (auth.ADMIN, reader.list_webhooks),
            (auth.READ, lambda: starter.get_run(run["run_id"])),
            (auth.READ, lambda: next(starter.run_events(run["run_id"]))),
            (auth.READ, limited.metrics),  # totals over every agent: not for a limited key
        ]
        for scope, refused in refusals:
            with pytest.raises(Forbidden) as lacking:
                refused()
            assert (lacking.value.status, lacking.value.code) == (403, "forbidden"), scope
            assert lacking.value.details.get("scope") == scope
        # the WebSocket refuses with an error frame; the follower raises it as Forbidden
        with pytest.raises(Forbidden) as ws:
            next(starter.follow())
        assert (ws.value.status, ws.value.code) == (403, "forbidden")
        assert auth.READ in ws.value.message
        assert admin.get_interrupt(question["id"]).interrupt["status"] == "pending"
        admin.cancel_run(run["run_id"])
