"""The Python client (clients/python) against a real broker: every public route through
``Client`` (``AsyncClient``: tests/test_python_client_async.py), safe retries of answers,
SSE and WebSocket followers that miss nothing when their connection drops, webhook
verification and action links, the AG-UI endpoint and the service routes. The module's
last test checks that its requests reached every public route of the broker."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from interrupt_broker_client import (
    Client,
    Conflict,
    Event,
    FingerprintMismatch,
    Interrupt,
    InvalidInput,
    NotFound,
    Retry,
    RunAgentInput,
    WebhookVerificationError,
    error_for_result,
    link_for,
    link_token,
    verify_webhook,
)
from standardwebhooks import Webhook

from broker.core import signing
from tests.client_broker import UNDO_AGENT, client_broker
from tests.client_faults import Faults, FaultyTransport
from tests.client_recording import Recorder, coverage_report, require_whole_module
from tests.graphs import count
from tests.harness import Broker, delete_prefix, wait_until
from tests.receiver import Receiver, running

pytestmark = pytest.mark.slow

SECRET = signing.new_secret()
HOOK = "/ok/pyclient"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with running() as r:
        yield r


@pytest.fixture(scope="module")
def broker(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory, receiver: Receiver
) -> Iterator[Broker]:
    b = client_broker(
        redis_url, tmp_path_factory.mktemp("pyclient"), "pyclient", receiver.url + HOOK, SECRET
    )
    with b.serving():
        yield b


@pytest.fixture(scope="module")
def seen() -> Iterator[Recorder]:
    """Every request the module's clients send."""
    with Recorder().websockets() as r:
        yield r


@pytest.fixture
def client(broker: Broker, seen: Recorder) -> Iterator[Client]:
    with Client(broker.url, event_hooks=seen.hooks()) as c:
        yield c


def paused(client: Client, run_id: str) -> Interrupt:
    """Waits for the run to stop on an interrupt; the pending one."""

    def check() -> Interrupt | None:
        run = client.get_run(run_id)
        assert run["status"] not in ("failed", "succeeded", "cancelled"), run
        pending = client.list_interrupts(run_id=run_id).items
        return pending[0] if run["status"] == "interrupted" and pending else None

    got: Interrupt = wait_until(check, f"run {run_id} to stop on an interrupt")
    return got


def finished(client: Client, run_id: str) -> str:
    def check() -> str | None:
        status = client.get_run(run_id)["status"]
        return status if status in ("succeeded", "failed", "cancelled") else None

    got: str = wait_until(check, f"run {run_id} to end")
    return got


def restart_api(broker: Broker, *, kill: bool) -> None:
    """The API process goes away (SIGKILL: every connection drops at once; SIGTERM:
    live streams end with a reconnect hint) and a new one takes its port."""
    assert broker.api is not None
    broker.api.kill() if kill else broker.api.stop()
    broker.start_api()


def assert_whole_log(seen: list[Event], log: list[Event]) -> None:
    ids = [e["id"] for e in seen]
    assert len(ids) == len(set(ids)), "an event came twice"
    assert ids == [e["id"] for e in log], "an event is missing or out of order"
    assert seen == log


def test_runs_and_answers_through_the_sync_client(client: Client) -> None:
    agents = {a["agent_id"] for a in client.list_agents()}
    assert {"counter", "naming"} <= agents

    key = str(uuid.uuid4())
    run = client.start_run("naming", {"messages": [{"role": "user", "content": "hi"}]},
                           idempotency_key=key)  # fmt: skip
    again = client.start_run("naming", {"messages": [{"role": "user", "content": "hi"}]},
                             idempotency_key=key)  # fmt: skip
    assert again == run and run["status"] == "queued"

    approval = paused(client, run["run_id"])
    fetched = client.get_interrupt(approval["id"])
    assert fetched.interrupt["status"] == "pending" and fetched.interrupt["type"] == "approval"
    assert fetched.fingerprint == fetched.interrupt["fingerprint"]
    with pytest.raises(FingerprintMismatch) as wrong:
        client.resolve(approval["id"], True, if_match="not-this-question")
    assert wrong.value.status == 412 and wrong.value.fingerprint == fetched.fingerprint
    answered = client.resolve(
        approval["id"], True, comment="fine", resolved_by="alice", if_match=fetched.fingerprint
    )
    assert answered["status"] == "resolved"
    assert answered["resolution"] is not None and answered["resolution"]["comment"] == "fine"

    with pytest.raises(Conflict) as twice:
        client.resolve(approval["id"], False)
    assert twice.value.code == "already_resolved" and twice.value.resolution is not None
    assert twice.value.resolution["value"] is True
    outcomes = [e["outcome"] for e in client.audit(approval["id"])]
    assert outcomes.count("accepted") == 1 and len(outcomes) >= 3

    ask = paused(client, run["run_id"])
    assert ask["type"] == "ask"
    client.resolve(ask["id"], "Ada")
    assert finished(client, run["run_id"]) == "succeeded"
    assert "Ada" in client.get_run(run["run_id"])["output"]["final_message"]

    with pytest.raises(NotFound) as missing:
        client.get_run("no-such-run")
    assert (missing.value.status, missing.value.code) == (404, "run_not_found")
    assert missing.value.message
    with pytest.raises(InvalidInput) as bad_sse:
        next(client.run_events(run["run_id"], last_event_id="not-an-id"))
    assert bad_sse.value.code == "invalid_cursor"
    with pytest.raises(InvalidInput) as bad_ws:
        next(client.follow(after="not-an-id"))
    assert bad_ws.value.code == "invalid_cursor"


def test_paging_bulk_answers_assignment_and_cancel(client: Client) -> None:
    thread = f"t-{uuid.uuid4().hex[:8]}"
    runs = [client.start_run("counter", thread_id=f"{thread}-{i}") for i in range(3)]
    asked = [paused(client, r["run_id"]) for r in runs]

    by_page = list(client.iter_interrupts(agent_id="counter", limit=1))
    assert {a["id"] for a in asked} <= {i["id"] for i in by_page}
    assert len(by_page) == len({i["id"] for i in by_page})
    first = client.list_runs(agent_id="counter", limit=1)
    assert len(first.items) == 1 and first.next_cursor is not None
    all_runs = list(client.iter_runs(agent_id="counter", limit=1))
    assert {r["run_id"] for r in runs} <= {r["run_id"] for r in all_runs}
    assert [r["run_id"] for r in all_runs] == [
        r["run_id"] for r in client.list_runs(agent_id="counter", limit=500).items
    ]

    moved = client.assign(asked[0]["id"], ["user:lead@example.com"], watchers=["group:audit"])
    assert moved["assignees"] == ["user:lead@example.com"] and moved["watchers"] == ["group:audit"]
    assert client.assign(asked[0]["id"], [])["assignees"] == []

    both = client.resolve_many(True, ids=[asked[0]["id"], asked[1]["id"]], comment="batch")
    assert (both["accepted"], both["refused"], both["truncated"]) == (2, 0, False)
    again = client.resolve_many(True, ids=[asked[0]["id"]])
    refused = error_for_result(again["results"][0])
    assert isinstance(refused, Conflict) and refused.code == "already_resolved"
    by_filter = client.resolve_many(True, filter={"thread_id": runs[2]["thread_id"]})
    assert by_filter["accepted"] == 1
    assert [finished(client, r["run_id"]) for r in runs] == ["succeeded"] * 3

    other = client.start_run("counter")
    paused(client, other["run_id"])
    client.cancel_run(other["run_id"])
    assert client.get_run(other["run_id"])["status"] == "cancelled"
    with pytest.raises(Conflict) as ended:
        client.cancel_run(other["run_id"])
    assert ended.value.code == "run_finished"


def test_an_answer_held_for_undo_is_withdrawn(client: Client) -> None:
    run = client.start_run(UNDO_AGENT)
    question = paused(client, run["run_id"])
    assert client.resolve(question["id"], True)["status"] == "accepted"
    back = client.withdraw(question["id"])
    assert back["status"] == "pending"
    with pytest.raises(Conflict) as twice:
        client.withdraw(question["id"])
    assert twice.value.code == "not_held"
    client.cancel_run(run["run_id"])


def test_an_answer_and_a_start_survive_a_lost_response_and_a_503(
    broker: Broker, seen: Recorder
) -> None:
    writes = Faults(lambda r: r.method == "POST")
    faulty = FaultyTransport(writes)
    with Client(broker.url, transport=faulty, event_hooks=seen.hooks()) as client:
        thread = f"t-{uuid.uuid4().hex[:8]}"
        run = client.start_run("counter", thread_id=thread)
        assert [r["run_id"] for r in client.list_runs(thread_id=thread).items] == [run["run_id"]]
        question = paused(client, run["run_id"])
        writes.lose, writes.refuse = 1, 1
        got = client.resolve(question["id"], True)
        assert got["status"] == "resolved"
        assert finished(client, run["run_id"]) == "succeeded"
        outcomes = [e["outcome"] for e in client.audit(question["id"])]
    assert outcomes.count("accepted") == 1
    answers = [r for r in writes.seen if r.url.path.endswith("/resolve")]
    assert len(answers) == 3
    assert len({r.headers["idempotency-key"] for r in answers}) == 1
    starts = [r for r in writes.seen if r.method == "POST" and r.url.path == "/runs"]
    assert len(starts) == 3 and len({r.headers["idempotency-key"] for r in starts}) == 1
    url, prefix = broker.env["REDIS_URL"], broker.env["BROKER_KEY_PREFIX"]
    assert count(url, prefix, "answered", thread) == 1


def test_sse_follows_a_run_across_a_killed_api_process(broker: Broker, client: Client) -> None:
    run = client.start_run("counter")
    seen: list[Event] = []
    for event in client.run_events(run["run_id"]):
        seen.append(event)
        if event["type"] == "run.interrupted":
            restart_api(broker, kill=True)
            client.resolve(event["data"]["interrupt_ids"][0], True)
    assert seen[-1]["type"] == "run.succeeded"
    assert_whole_log(seen, list(client.run_events(run["run_id"])))
    # resumed after the middle of the log: the rest, and nothing before
    middle = seen[len(seen) // 2]["id"]
    rest = list(client.run_events(run["run_id"], last_event_id=middle))
    assert rest == seen[len(seen) // 2 + 1 :]


def test_ws_follows_across_an_api_restart(broker: Broker, client: Client) -> None:
    run = client.start_run("counter")
    seen: list[Event] = []
    for event in client.follow(run_id=run["run_id"], after="0"):
        seen.append(event)
        if event["type"] == "run.interrupted":
            restart_api(broker, kill=False)
            client.resolve(paused(client, run["run_id"])["id"], True)
        if event["type"] == "run.succeeded":
            break
    log = [
        e
        for e in client.run_events(run["run_id"])
        if e["type"].split(".")[0] in ("run", "interrupt")
    ]
    assert_whole_log(seen, log)


def test_webhook_deliveries_verify_and_their_links_answer(
    client: Client, receiver: Receiver
) -> None:
    run = client.start_run("counter")
    question = paused(client, run["run_id"])

    def delivery() -> Any:
        for r in receiver.at(HOOK):
            if json.loads(r.body)["data"].get("interrupt_id") == question["id"]:
                return r
        return None

    got = wait_until(delivery, "the interrupt.created delivery")
    payload = verify_webhook(SECRET, got.body, got.headers)
    assert payload == Webhook(SECRET).verify(got.body, got.headers)
    assert payload["type"] == "interrupt.created"
    with pytest.raises(WebhookVerificationError):
        verify_webhook(SECRET, got.body + " ", got.headers)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(signing.new_secret(), got.body, got.headers)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(
            SECRET, got.body, got.headers, now=int(got.headers["webhook-timestamp"]) + 3600
        )

    links = payload["data"]["links"]
    assert {"approve", "reject"} <= {link["choice"] for link in links}
    approve = link_for(links, "approve")
    shown = client.show_link(approve["url"])  # the page a mail scanner may open: no answer
    assert shown.ok and link_token(approve) in shown.page and "<form" in shown.page
    assert client.get_interrupt(question["id"]).interrupt["status"] == "pending"
    used = client.answer_link(links, "approve", comment="from the mail")
    assert used.ok, used.page
    assert client.show_link(approve).status == 410
    answered = client.get_interrupt(question["id"]).interrupt
    assert answered["resolution"] is not None
    assert answered["resolution"]["channel"] == "link"
    assert answered["resolution"]["comment"] == "from the mail"
    assert client.use_link(link_for(links, "approve")).status == 410
    assert client.use_link(link_for(links, "reject")["url"]).status == 409
    assert finished(client, run["run_id"]) == "succeeded"


def test_service_routes_health_metrics_sign_in_and_receipt_keys(client: Client) -> None:
    assert client.health() == {"status": "ok"}
    report = client.ready()
    assert report["status"] == "ready" and report["checks"]["redis"] == "ok"
    assert (report["checks"].get("workers") or 0) >= 1
    assert client.auth_config() == {"oidc": None}

    run = client.start_run("counter")
    client.resolve(paused(client, run["run_id"])["id"], True)
    assert finished(client, run["run_id"]) == "succeeded"
    metrics = dict(
        line.rsplit(" ", 1) for line in client.metrics().splitlines() if not line.startswith("#")
    )
    assert float(metrics['broker_runs{status="succeeded"}']) >= 1
    assert float(metrics["broker_workers_alive"]) >= 1

    # a resolution's signed receipt verifies against the published keys
    [answered] = client.list_interrupts(run_id=run["run_id"], status="resolved").items
    assert answered["resolution"] is not None
    receipt = answered["resolution"]["receipt"]
    keys = {k["kid"]: k for k in client.jwks()["keys"]}
    jwk = keys[jwt.get_unverified_header(receipt)["kid"]]
    assert (jwk["kty"], jwk["crv"], jwk["alg"]) == ("OKP", "Ed25519", "EdDSA")
    claims = jwt.decode(receipt, jwt.PyJWK(dict(jwk)).key, algorithms=["EdDSA"])
    assert claims["sub"] == answered["id"]


def test_not_ready_is_a_report_not_an_error(redis_url: str, tmp_path: Path, seen: Recorder) -> None:
    lone = Broker(redis_url, f"ibt{uuid.uuid4().hex[:10]}", tmp_path)  # an API, no worker
    try:
        lone.start_api()
        with Client(lone.url, event_hooks=seen.hooks(), retry=Retry(attempts=1)) as client:
            report = client.ready()
            assert report == {"status": "not_ready", "checks": {"redis": "ok", "workers": 0}}
            assert client.health() == {"status": "ok"}
    finally:
        lone.stop()
        delete_prefix(redis_url, lone.env["BROKER_KEY_PREFIX"])


def test_the_agui_endpoint_streams_events_and_takes_answers(client: Client) -> None:
    thread = f"t-{uuid.uuid4().hex[:8]}"
    said = [{"id": f"u-{thread}", "role": "user", "content": "hi"}]
    asks: RunAgentInput = {
        "threadId": thread,
        "messages": said,
        "forwardedProps": {"interruptOutcome": True},
    }
    first = list(client.agui("naming", asks))
    assert first[0]["type"] == "RUN_STARTED" and first[-1]["type"] == "RUN_FINISHED"
    [custom] = [e for e in first if e["type"] == "CUSTOM"]
    assert custom["name"] == "on_interrupt"
    assert json.loads(custom["value"])["type"] == "approval"
    [approval] = first[-1]["outcome"]["interrupts"]
    resume = [{"interruptId": approval["id"], "status": "resolved", "payload": True}]
    second = list(client.agui("naming", {"threadId": thread, "messages": said, "resume": resume}))
    customs = [json.loads(e["value"]) for e in second if e["type"] == "CUSTOM"]
    assert [c["type"] for c in customs] == ["ask"]
    got = client.get_interrupt(approval["id"]).interrupt
    assert got["status"] == "resolved" and got["resolution"] is not None
    assert got["resolution"]["channel"] == "agui"

    # trouble inside the stream is an event; a refusal before it, the broker's error
    other = f"t-{uuid.uuid4().hex[:8]}"
    stray = [{"interruptId": "x", "status": "resolved", "payload": 1}]
    events = list(client.agui("naming", {"threadId": other, "messages": said, "resume": stray}))
    assert [e["type"] for e in events] == ["RUN_STARTED", "RUN_ERROR"]
    assert events[-1]["code"] == "no_pending_interrupt"
    with pytest.raises(NotFound) as unknown:
        next(client.agui("nobody", {"threadId": other, "messages": said}))
    assert (
        unknown.value.code == "agent_not_found"
        and "naming" in unknown.value.details["known_agents"]
    )


def test_webhook_subscriptions_are_managed(client: Client, receiver: Receiver) -> None:
    made = client.create_webhook(receiver.url + "/ok/managed", events=["run.completed"])
    sid = made["id"]
    assert made["secret"].startswith("whsec_") and "secret" not in client.get_webhook(sid)
    assert sid in {w["id"] for w in client.list_webhooks()}
    assert client.update_webhook(sid, enabled=False)["enabled"] is False
    assert client.webhook_deliveries(sid, limit=5) == []
    client.delete_webhook(sid)
    with pytest.raises(NotFound):
        client.get_webhook(sid)


def test_the_readme_example_runs(broker: Broker, client: Client) -> None:
    """The README's "Python client" example, as printed, against this broker."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("## Python client") : readme.index("## TypeScript client")]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    names: dict[str, Any] = {}
    exec(code.replace("http://127.0.0.1:8000", broker.url).replace("ibk_…", "unused"), names)
    run = client.get_run(names["run"]["run_id"])
    assert run["status"] == "succeeded" and "Ada" in run["output"]["final_message"]


def test_the_module_reached_every_public_route_through_the_client(
    broker: Broker, seen: Recorder, request: pytest.FixtureRequest
) -> None:
    """Last in the module: every route the broker serves (its OpenAPI document, and
    ``WS /ws``) was reached by a request of ``Client`` in the tests above."""
    require_whole_module(request)
    spec = httpx.get(f"{broker.url}/openapi.json", timeout=30).json()
    missing = seen.unreached(spec)
    assert missing == [], coverage_report(missing)
