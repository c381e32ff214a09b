"""Outgoing webhooks: signed per Standard Webhooks (checked with the `standardwebhooks`
package), retried with backoff, given up after the configured attempts, logged per
subscription, and never sent to private addresses unless allowed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aioredis
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from broker.core import netguard, signing, webhooks
from broker.core.records import RunRecord, RunStatus
from broker.core.settings import Settings
from broker.core.store import Store
from tests.flow import next_interrupt, start, wait_status
from tests.harness import Broker, delete_prefix, wait_until
from tests.receiver import Receiver, running
from worker import deliveries
from worker.deliveries import backoff_s

CONFIGURED_SECRET = signing.new_secret()
MAX_ATTEMPTS = 3


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with running() as r:
        yield r


@pytest.fixture(scope="module")
def hooked(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory, receiver: Receiver
) -> Iterator[Broker]:
    p = f"ibt{uuid.uuid4().hex[:10]}"
    configured = [
        {
            "id": "configured",
            "url": f"{receiver.url}/ok/configured",
            "secret": CONFIGURED_SECRET,
            "events": ["interrupt.created"],
            "agents": ["naming"],
        }
    ]
    b = Broker(
        redis_url,
        p,
        tmp_path_factory.mktemp("webhooks"),
        BROKER_WEBHOOK_ALLOW_PRIVATE="1",
        BROKER_WEBHOOK_BACKOFF_S="0.05",
        BROKER_WEBHOOK_MAX_ATTEMPTS=str(MAX_ATTEMPTS),
        BROKER_WEBHOOKS=json.dumps(configured),
        BROKER_LINK_SECRET=signing.new_secret(),
        BROKER_PUBLIC_URL="https://broker.example.test",
    )
    with b.serving():
        yield b


@pytest.fixture
def client(hooked: Broker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hooked.url, timeout=30) as c:
        yield c


def subscribe(client: httpx.Client, url: str, **fields: Any) -> dict[str, Any]:
    r = client.post("/admin/webhooks", json={"url": url, **fields})
    assert r.status_code == 201, r.text
    sub: dict[str, Any] = r.json()
    assert sub["secret"].startswith("whsec_")
    return sub


def verified(secret: str, received: Any) -> dict[str, Any]:
    payload: dict[str, Any] = Webhook(secret).verify(received.body, received.headers)
    return payload


def delivered(receiver: Receiver, path: str, etype: str) -> list[Any]:
    return [r for r in receiver.at(path) if json.loads(r.body)["type"] == etype]


@pytest.mark.slow
def test_deliveries_are_signed_and_carry_the_interrupt_and_its_links(
    client: httpx.Client, receiver: Receiver
) -> None:
    path = f"/ok/{uuid.uuid4().hex}"
    sub = subscribe(client, receiver.url + path, agents=["counter"])
    run = start(client, "counter", {})
    target = next_interrupt(client, run["run_id"])

    created = wait_until(lambda: delivered(receiver, path, "interrupt.created"), "created")
    payload = verified(sub["secret"], created[0])
    assert payload["type"] == "interrupt.created"
    data = payload["data"]
    assert data["interrupt_id"] == target["id"]
    assert data["run_id"] == run["run_id"]
    assert data["interrupt"]["value"] == target["value"]
    assert [link["choice"] for link in data["links"]] == ["approve", "reject"]
    assert all(
        link["url"].startswith("https://broker.example.test/links/v1.") for link in data["links"]
    )
    headers = created[0].headers
    assert headers["webhook-id"].startswith("evt_")
    assert headers["webhook-signature"].startswith("v1,")
    # the verifier is not vacuous: a changed body or another secret fails it
    with pytest.raises(WebhookVerificationError):
        Webhook(sub["secret"]).verify(created[0].body.replace("counter", "c0unter"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(created[0].body, headers)

    assert client.post(f"/interrupts/{target['id']}/resolve", json={"value": 1}).status_code == 200
    wait_status(client, run["run_id"], "succeeded")
    done = wait_until(lambda: delivered(receiver, path, "run.succeeded"), "run.succeeded")
    assert verified(sub["secret"], done[0])["data"]["run_id"] == run["run_id"]
    resolved = wait_until(lambda: delivered(receiver, path, "interrupt.resolved"), "resolved")
    assert verified(sub["secret"], resolved[0])["data"]["resolution"]["value"] == 1

    # an attempt is logged once the receiver has answered it, so shortly after it arrives
    def logged() -> list[dict[str, Any]] | None:
        items = client.get(f"/admin/webhooks/{sub['id']}/deliveries").json()["items"]
        wanted = {"interrupt.created", "interrupt.resolved", "run.succeeded"}
        return items if {e["event"] for e in items} >= wanted else None

    log = wait_until(logged, "every delivery in the log")
    assert {e["outcome"] for e in log} == {"delivered"}
    assert all(e["status_code"] == 200 and e["attempt"] == 1 for e in log)


def _log_until(client: httpx.Client, sid: str, outcome: str) -> list[dict[str, Any]]:
    def check() -> list[dict[str, Any]] | None:
        items: list[dict[str, Any]] = client.get(f"/admin/webhooks/{sid}/deliveries").json()[
            "items"
        ]
        return items if any(e["outcome"] == outcome for e in items) else None

    result: list[dict[str, Any]] = wait_until(check, f"a {outcome} delivery")
    return result


@pytest.mark.slow
def test_a_failing_receiver_is_retried_with_backoff_and_given_up(
    client: httpx.Client, receiver: Receiver
) -> None:
    path = f"/fail/{uuid.uuid4().hex}"
    sub = subscribe(client, receiver.url + path, agents=["counter"], events=["run.completed"])
    run = start(client, "counter", {})
    target = next_interrupt(client, run["run_id"])
    client.post(f"/interrupts/{target['id']}/resolve", json={"value": 1})
    wait_status(client, run["run_id"], "succeeded")

    log = list(reversed(_log_until(client, sub["id"], "gave_up")))
    assert [e["attempt"] for e in log] == list(range(1, MAX_ATTEMPTS + 1))
    assert [e["outcome"] for e in log] == ["failed"] * (MAX_ATTEMPTS - 1) + ["gave_up"]
    assert [e.get("next_attempt_in_s") for e in log[:-1]] == [0.05, 0.1]
    assert all(e["status_code"] == 500 and e["event"] == "run.succeeded" for e in log)
    attempts = receiver.at(path)
    assert len(attempts) == MAX_ATTEMPTS
    assert len({a.headers["webhook-id"] for a in attempts}) == 1
    for a in attempts:
        assert verified(sub["secret"], a)["type"] == "run.succeeded"


@pytest.mark.slow
def test_a_receiver_that_recovers_gets_the_same_message(
    client: httpx.Client, receiver: Receiver
) -> None:
    path = f"/flaky/{uuid.uuid4().hex}"
    sub = subscribe(client, receiver.url + path, agents=["counter"], events=["run.succeeded"])
    run = start(client, "counter", {})
    target = next_interrupt(client, run["run_id"])
    client.post(f"/interrupts/{target['id']}/resolve", json={"value": 1})

    log = list(reversed(_log_until(client, sub["id"], "delivered")))
    assert [e["outcome"] for e in log] == ["failed", "failed", "delivered"]
    attempts = receiver.at(path)
    assert len({a.headers["webhook-id"] for a in attempts}) == 1
    assert all(verified(sub["secret"], a)["data"]["run_id"] == run["run_id"] for a in attempts)


def _arq_jobs(redis_url: str, sid: str) -> list[bytes]:
    r = redis.Redis.from_url(redis_url)
    try:
        return list(r.scan_iter(match=f"*:arq:*webhook:{sid}:*", count=1000))
    finally:
        r.close()


@pytest.mark.slow
def test_filters_by_agent_and_type_and_configured_subscriptions(
    client: httpx.Client, receiver: Receiver, redis_url: str
) -> None:
    watch = f"/ok/{uuid.uuid4().hex}"
    watcher = subscribe(client, receiver.url + watch, agents=["counter"])
    other_agent = subscribe(client, receiver.url + "/ok/never-a", agents=["naming"])
    other_type = subscribe(client, receiver.url + "/ok/never-t", agents=["counter"], types=["ask"])
    run = start(client, "counter", {})
    target = next_interrupt(client, run["run_id"])
    client.post(f"/interrupts/{target['id']}/resolve", json={"value": 1})
    wait_until(lambda: delivered(receiver, watch, "run.succeeded"), "the watcher's delivery")
    # jobs are queued per matching subscription, all before the event is acknowledged
    assert _arq_jobs(redis_url, watcher["id"])
    assert _arq_jobs(redis_url, other_agent["id"]) == []
    assert _arq_jobs(redis_url, other_type["id"]) == []

    # the configured subscription: read-only over the API, and it delivers
    listed = {s["id"]: s for s in client.get("/admin/webhooks").json()["items"]}
    assert listed["configured"]["source"] == "config"
    assert "secret" not in listed["configured"]
    assert client.delete("/admin/webhooks/configured").status_code == 409
    naming = start(client, "naming", {"messages": [{"role": "user", "content": "hi"}]})
    ask = next_interrupt(client, naming["run_id"])
    got = wait_until(lambda: delivered(receiver, "/ok/configured", "interrupt.created"), "config")
    assert verified(CONFIGURED_SECRET, got[0])["data"]["interrupt_id"] == ask["id"]
    client.post(f"/runs/{naming['run_id']}/cancel")


@pytest.mark.slow
def test_managed_subscriptions_can_be_changed_and_removed(client: httpx.Client) -> None:
    sub = subscribe(client, "http://127.0.0.1:9/none", agents=["nobody"])
    assert "secret" not in client.get(f"/admin/webhooks/{sub['id']}").json()
    changed = client.patch(f"/admin/webhooks/{sub['id']}", json={"enabled": False}).json()
    assert changed["enabled"] is False
    assert client.delete(f"/admin/webhooks/{sub['id']}").status_code == 204
    assert client.get(f"/admin/webhooks/{sub['id']}").status_code == 404
    weak = {"url": "http://127.0.0.1:9/", "secret": "whsec_YQ=="}
    bad = client.post("/admin/webhooks", json=weak)
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_request")


# The guard against private addresses: refused before any connection is made


@pytest.fixture(scope="module")
def guarded(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    p = f"ibt{uuid.uuid4().hex[:10]}"
    b = Broker(redis_url, p, tmp_path_factory.mktemp("guard"))
    try:
        b.start_api()
        yield b
    finally:
        b.stop()
        delete_prefix(redis_url, p)


UNSAFE = [
    "http://127.0.0.1:8080/hook",
    "http://localhost/hook",
    "http://10.1.2.3/hook",
    "http://192.168.0.10/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:169.254.169.254]/hook",
    # IPv6 forms that carry an IPv4 address are judged by it
    "http://[::127.0.0.1]/hook",
    "http://[::169.254.169.254]/hook",
    "http://[64:ff9b::169.254.169.254]/hook",
    "http://[64:ff9b::a9fe:a9fe]/hook",
    "http://[64:ff9b::10.0.0.1]/hook",
    "http://[64:ff9b:1::a00:1]/hook",
    "http://[2002:a9fe:a9fe::1]/hook",
    "http://[2002:7f00:1::1]/hook",
    "http://[::ffff:0:10.0.0.1]/hook",
    "http://0.0.0.0/hook",
    "ftp://files.example.com/hook",
    "http://user:pw@127.0.0.1/hook",
]


@pytest.mark.slow
@pytest.mark.parametrize("url", UNSAFE)
def test_private_addresses_are_refused_unless_allowed(guarded: Broker, url: str) -> None:
    r = httpx.post(f"{guarded.url}/admin/webhooks", json={"url": url})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "unsafe_webhook_url"
    assert httpx.get(f"{guarded.url}/admin/webhooks").json()["items"] == []


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("169.254.169.254", False),
        ("2606:4700::1111", True),
        ("::ffff:8.8.8.8", True),
        ("::ffff:169.254.169.254", False),
        ("::8.8.8.8", True),
        ("::127.0.0.1", False),
        ("::169.254.169.254", False),
        ("::", False),
        ("::1", False),
        ("64:ff9b::8.8.8.8", True),
        ("64:ff9b::808:808", True),
        ("64:ff9b::169.254.169.254", False),
        ("64:ff9b::a9fe:a9fe", False),
        ("64:ff9b::192.168.1.1", False),
        ("64:ff9b:1::808:808", False),
        ("2002:808:808::1", True),
        ("2002:a9fe:a9fe::1", False),
        ("2002:7f00:1::", False),
        ("2002:c0a8:101:1::", False),
        ("::ffff:0:8.8.8.8", True),
        ("::ffff:0:10.0.0.1", False),
    ],
)
def test_ipv6_forms_are_judged_by_the_ipv4_address_they_embed(address: str, public: bool) -> None:
    assert netguard.is_public(ipaddress.ip_address(address)) is public


async def test_the_guard_refuses_before_connecting() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        for url in UNSAFE:
            with pytest.raises(netguard.UnsafeAddress):
                await netguard.post(
                    client, url, content="{}", headers={}, allow_private=False, timeout=1
                )
        assert calls == []
        # allowed, it connects to the address it checked, with the original Host
        await netguard.post(
            client,
            "http://localhost:8123/hook",
            content="{}",
            headers={},
            allow_private=True,
            timeout=1,
        )
    assert calls[0].url.host in ("127.0.0.1", "::1")
    assert calls[0].headers["host"] == "localhost:8123"


def test_our_signature_is_the_standard_one() -> None:
    secret = signing.new_secret()
    body = json.dumps({"type": "x", "data": {"n": 1}})
    now = int(time.time())
    headers = signing.headers(secret, "msg_1", now, body)
    assert Webhook(secret).verify(body, headers) == {"type": "x", "data": {"n": 1}}


def test_webhook_secrets_must_be_real_outside_dev() -> None:
    with pytest.raises(signing.WebhookSecretError):
        signing.check_secret("whsec_YQ==", dev=False)
    with pytest.raises(signing.WebhookSecretError):
        signing.check_secret("no-prefix", dev=False)
    signing.check_secret("whsec_YQ==", dev=True)
    signing.check_secret(signing.new_secret(), dev=False)


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [backoff_s(n, 2, 10) for n in range(1, 6)] == [2, 4, 8, 10, 10]


def test_subscription_matching() -> None:
    sub = webhooks.Subscription(
        id="s", url="https://x.test/", secret="whsec_x", events=["run.completed"], agents=["a"]
    )
    assert sub.matches({"type": "run.failed", "agent_id": "a"})
    assert not sub.matches({"type": "run.failed", "agent_id": "b"})
    assert not sub.matches({"type": "interrupt.created", "agent_id": "a"})
    typed = sub.model_copy(update={"events": ["interrupt.created"], "types": ["approval"]})
    created = {"type": "interrupt.created", "agent_id": "a"}
    assert typed.matches({**created, "data": {"type": "approval"}})
    assert not typed.matches({**created, "data": {"type": "x"}})
    assert not sub.model_copy(update={"enabled": False}).matches({"type": "run.failed"})


# The dispatcher's consumer group, in process on a real Redis


class _Pool:
    """Stands in for arq's pool: records the jobs the dispatcher queues."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Any, ...]] = []

    async def enqueue_job(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.jobs.append((name, *args, kwargs["_job_id"]))


async def test_events_a_dead_worker_left_pending_are_dispatched_by_another(
    aredis: aioredis.Redis, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(aredis, settings)
    k = store.keys
    sub = webhooks.Subscription(id="s", url="https://x.test/", secret=signing.new_secret())
    await aredis.xgroup_create(k.events, k.webhook_group, id="$", mkstream=True)
    run = RunRecord(id="r", thread_id="t", agent_id="a", status=RunStatus.SUCCEEDED)
    await store.emit(run, "run.succeeded", output=None)
    # a worker read the event, then died before acknowledging it
    await aredis.xreadgroup(k.webhook_group, "dead", {k.events: ">"}, count=10)
    monkeypatch.setattr(deliveries, "CLAIM_IDLE_MS", 0)
    monkeypatch.setattr(deliveries, "STALE_MS", -1)
    pool = _Pool()
    task = asyncio.create_task(deliveries.dispatch_loop(store, pool, "alive", {"s": sub}))

    async def consumers() -> list[str]:
        return [c["name"] for c in await aredis.xinfo_consumers(k.events, k.webhook_group)]

    try:
        # the pass queues the job, then acknowledges it and forgets the dead consumer
        for _ in range(500):
            if pool.jobs and "dead" not in await consumers():
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    [(name, sid, msg_id, body, job_id)] = pool.jobs
    assert (name, sid) == ("deliver_webhook", "s")
    assert json.loads(body)["type"] == "run.succeeded"
    assert job_id == f"webhook:s:{msg_id.removeprefix('evt_')}"
    assert (await aredis.xpending(k.events, k.webhook_group))["pending"] == 0
    # the dead worker's consumer, with nothing pending now, is forgotten
    assert "dead" not in await consumers()
