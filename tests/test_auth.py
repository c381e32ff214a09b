"""API keys: every endpoint x {no key, wrong key, read-only, resolve, other agent, admin}.

A real API process and worker with auth on. Keys are configured as SHA-256 digests, as
production would; a key limited to another agent gets 404 for this agent's runs and
interrupts, exactly as for ids that do not exist.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from broker.core import auth, secret
from broker.core.settings import Settings
from tests.flow import next_interrupt, wait_status
from tests.harness import Broker, broker_env, delete_prefix, wait_until

pytestmark = pytest.mark.slow

KEYS = {
    "read": ("k-read-" + uuid.uuid4().hex, [auth.READ], None),
    "resolve": ("k-resolve-" + uuid.uuid4().hex, [auth.RESOLVE], None),
    "other": (
        "k-other-" + uuid.uuid4().hex,
        [auth.READ, auth.RESOLVE, auth.RUNS_WRITE],
        ["naming"],
    ),
    "admin": ("k-admin-" + uuid.uuid4().hex, [auth.ADMIN], None),
}
WHO = ["none", "wrong", "read", "resolve", "other", "admin"]


def keys_json() -> str:
    return json.dumps(
        [
            {"id": name, "key_sha256": auth.digest(key), "scopes": scopes}
            | ({"agents": agents} if agents else {})
            for name, (key, scopes, agents) in KEYS.items()
        ]
    )


def headers(who: str) -> dict[str, str]:
    if who == "none":
        return {}
    if who == "wrong":
        return {"Authorization": "Bearer not-a-key"}
    return {"Authorization": f"Bearer {KEYS[who][0]}"}


@pytest.fixture(scope="module")
def secured(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    p = f"ibt{uuid.uuid4().hex[:10]}"
    b = Broker(
        redis_url,
        p,
        tmp_path_factory.mktemp("auth"),
        BROKER_AUTH="on",
        BROKER_API_KEYS=keys_json(),
        BROKER_WEBHOOK_ALLOW_PRIVATE="1",
        BROKER_LINK_SECRET=secret.token(),
    )
    try:
        b.start_worker()
        b.start_api()
        b.wait_ready()
        yield b
    finally:
        b.stop()
        delete_prefix(redis_url, p)


@pytest.fixture(scope="module")
def admin(secured: Broker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=secured.url, timeout=30, headers=headers("admin")) as client:
        yield client


@dataclass
class World:
    run_id: str
    interrupt_id: str
    webhook_id: str


def waiting_run(admin: httpx.Client) -> tuple[str, str]:
    """A counter run stopped on its interrupt: (run id, interrupt id)."""
    r = admin.post("/runs", json={"agent_id": "counter", "input": {}})
    assert r.status_code == 202, r.text
    run_id = r.json()["run_id"]
    return run_id, next_interrupt(admin, run_id)["id"]


# a subscription no event matches, so nothing is ever sent to its (closed) port
SILENT_HOOK = {"url": "http://127.0.0.1:9/hook", "agents": ["nobody"]}


def silent_webhook(admin: httpx.Client) -> str:
    r = admin.post("/admin/webhooks", json=SILENT_HOOK)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


@pytest.fixture(scope="module")
def world(admin: httpx.Client) -> World:
    run_id, interrupt_id = waiting_run(admin)
    return World(run_id, interrupt_id, silent_webhook(admin))


AGUI_THREAD = str(uuid.uuid4())

# (name, method, path, json body, expected status per principal)
OK_READ = {"none": 401, "wrong": 401, "read": 200, "resolve": 403, "other": 404, "admin": 200}
ENDPOINTS: list[tuple[str, str, str, Any, dict[str, int]]] = [
    (
        "list agents",
        "GET",
        "/agents",
        None,
        {"none": 401, "wrong": 401, "read": 200, "resolve": 200, "other": 200, "admin": 200},
    ),
    (
        "start run",
        "POST",
        "/runs",
        {"agent_id": "counter", "input": {}},
        {"none": 401, "wrong": 401, "read": 403, "resolve": 403, "other": 404, "admin": 202},
    ),
    (
        "list runs",
        "GET",
        "/runs",
        None,
        {"none": 401, "wrong": 401, "read": 200, "resolve": 403, "other": 200, "admin": 200},
    ),
    ("get run", "GET", "/runs/{run}", None, OK_READ),
    (
        "cancel run",
        "POST",
        "/runs/{run}/cancel",
        None,
        {"none": 401, "wrong": 401, "read": 403, "resolve": 403, "other": 404, "admin": 200},
    ),
    (
        "list interrupts",
        "GET",
        "/interrupts",
        None,
        {"none": 401, "wrong": 401, "read": 200, "resolve": 403, "other": 200, "admin": 200},
    ),
    ("get interrupt", "GET", "/interrupts/{interrupt}", None, OK_READ),
    ("interrupt audit", "GET", "/interrupts/{interrupt}/audit", None, OK_READ),
    (
        "resolve",
        "POST",
        "/interrupts/{interrupt}/resolve",
        {"value": "yes"},
        {"none": 401, "wrong": 401, "read": 403, "resolve": 200, "other": 404, "admin": 200},
    ),
    (
        "AG-UI run",
        "POST",
        "/agui/counter",
        {
            "threadId": AGUI_THREAD,
            "runId": AGUI_THREAD,
            "messages": [{"id": "m1", "role": "user", "content": "hi"}],
        },
        # starting a run needs runs:write; the stream shows interrupts, so also read
        {"none": 401, "wrong": 401, "read": 403, "resolve": 403, "other": 404, "admin": 200},
    ),
    (
        "list webhooks",
        "GET",
        "/admin/webhooks",
        None,
        {"none": 401, "wrong": 401, "read": 403, "resolve": 403, "other": 403, "admin": 200},
    ),
    (
        "create webhook",
        "POST",
        "/admin/webhooks",
        SILENT_HOOK,
        {"none": 401, "wrong": 401, "read": 403, "resolve": 403, "other": 403, "admin": 201},
    ),
    (
        "get webhook",
        "GET",
        "/admin/webhooks/{webhook}",
        None,
        {"none": 401, "wrong": 401, "read": 403, "resolve": 403, "other": 403, "admin": 200},
    ),
    (
        "change webhook",
        "PATCH",
        "/admin/webhooks/{webhook}",
        {"description": "changed"},
        {"none": 401, "wrong": 401, "read": 403, "resolve": 403, "other": 403, "admin": 200},
    ),
    (
        "delete webhook",
        "DELETE",
        "/admin/webhooks/{webhook}",
        None,
        {"none": 401, "wrong": 401, "read": 403, "resolve": 403, "other": 403, "admin": 204},
    ),
    (
        "webhook deliveries",
        "GET",
        "/admin/webhooks/{webhook}/deliveries",
        None,
        {"none": 401, "wrong": 401, "read": 403, "resolve": 403, "other": 403, "admin": 200},
    ),
    (
        "readiness",
        "GET",
        "/readyz",
        None,
        {"none": 200, "wrong": 200, "read": 200, "resolve": 200, "other": 200, "admin": 200},
    ),
    (
        "metrics",
        "GET",
        "/metrics",
        None,
        {"none": 401, "wrong": 401, "read": 200, "resolve": 403, "other": 403, "admin": 200},
    ),
    (
        "liveness",
        "GET",
        "/healthz",
        None,
        {"none": 200, "wrong": 200, "read": 200, "resolve": 200, "other": 200, "admin": 200},
    ),
]


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize(
    ("name", "method", "path", "body", "expected"), ENDPOINTS, ids=[e[0] for e in ENDPOINTS]
)
def test_endpoint_answers_each_principal(
    secured: Broker,
    admin: httpx.Client,
    world: World,
    who: str,
    name: str,
    method: str,
    path: str,
    body: Any,
    expected: dict[str, int],
) -> None:
    run_id, interrupt_id, webhook_id = world.run_id, world.interrupt_id, world.webhook_id
    if expected[who] < 300 and method in ("POST", "DELETE") and "{" in path:
        # a success changes state: use fresh resources, so the shared ones stay as they are
        run_id, interrupt_id = waiting_run(admin)
        webhook_id = silent_webhook(admin)
    url = path.format(run=run_id, interrupt=interrupt_id, webhook=webhook_id)
    with httpx.Client(base_url=secured.url, timeout=30) as client:
        r = client.request(method, url, json=body, headers=headers(who))
    assert r.status_code == expected[who], r.text
    if r.status_code >= 400:
        error = r.json()["error"]
        assert error["message"]
        assert error["code"] == {401: "unauthorized", 403: "forbidden"}.get(
            r.status_code, error["code"]
        )
    if r.status_code == 401:
        assert r.headers["www-authenticate"].startswith("Bearer")
    if r.status_code == 404:
        hidden = ("run_not_found", "interrupt_not_found", "agent_not_found")
        assert r.json()["error"]["code"] in hidden
    # a refusal changes nothing: the shared run still waits on its interrupt
    if r.status_code >= 400:
        state = admin.get(f"/interrupts/{world.interrupt_id}").json()
        assert state["status"] == "pending"
        assert admin.get(f"/runs/{world.run_id}").json()["status"] == "interrupted"


def test_a_key_limited_to_another_agent_sees_nothing_of_this_one(
    secured: Broker, admin: httpx.Client, world: World
) -> None:
    other = {"Authorization": f"Bearer {KEYS['other'][0]}"}
    with httpx.Client(base_url=secured.url, timeout=30, headers=other) as client:
        agents = [a["agent_id"] for a in client.get("/agents").json()["items"]]
        assert agents == ["naming"]
        assert client.get("/interrupts").json()["items"] == []
        assert client.get("/interrupts", params={"agent_id": "counter"}).json()["items"] == []
        assert all(r["agent_id"] == "naming" for r in client.get("/runs").json()["items"])
        # 404 for an id of another agent is the same answer as for an id that never existed
        missing = client.get(f"/interrupts/{uuid.uuid4()}").json()["error"]
        hidden = client.get(f"/interrupts/{world.interrupt_id}").json()["error"]
        assert hidden["code"] == missing["code"] == "interrupt_not_found"
        # the thread of another agent's run cannot be borrowed to read its conversation
        thread = admin.get(f"/runs/{world.run_id}").json()["thread_id"]
        r = client.post("/runs", json={"agent_id": "naming", "input": {}, "thread_id": thread})
        assert r.status_code == 404, r.text
    # and the admin key sees the counter interrupt the other key could not
    assert world.interrupt_id in [i["id"] for i in admin.get("/interrupts").json()["items"]]


def test_refused_attempts_are_audited_with_the_key(admin: httpx.Client, secured: Broker) -> None:
    _, interrupt_id = waiting_run(admin)
    url = f"{secured.url}/interrupts/{interrupt_id}/resolve"
    assert httpx.post(url, json={"value": 1}, headers=headers("read")).status_code == 403
    assert httpx.post(url, json={"value": 1}, headers=headers("other")).status_code == 404
    assert httpx.post(url, json={"value": 1}, headers=headers("none")).status_code == 401
    trail = admin.get(f"/interrupts/{interrupt_id}/audit").json()["items"]
    # a request with no valid key is stopped at the gate, before it names an interrupt;
    # a key that cannot see the interrupt leaves no entry, so it cannot flood the log
    assert [(e["key_id"], e["channel"], e["outcome"]) for e in trail] == [
        ("read", "rest", "forbidden"),
    ]
    assert admin.get(f"/interrupts/{interrupt_id}").json()["status"] == "pending"


def test_x_api_key_header_works_too(secured: Broker) -> None:
    r = httpx.get(f"{secured.url}/interrupts", headers={"X-API-Key": KEYS["read"][0]})
    assert r.status_code == 200


def test_resolution_records_the_key_id(admin: httpx.Client, secured: Broker) -> None:
    run_id, interrupt_id = waiting_run(admin)
    r = httpx.post(
        f"{secured.url}/interrupts/{interrupt_id}/resolve",
        json={"value": "ok", "resolved_by": "ada@example.com"},
        headers=headers("resolve"),
    )
    assert r.status_code == 200, r.text
    resolution = r.json()["resolution"]
    assert resolution["key_id"] == "resolve"
    assert resolution["resolved_by"] == "ada@example.com"
    wait_status(admin, run_id, "succeeded")


@pytest.mark.parametrize("who", WHO)
def test_event_stream_takes_the_key_as_a_query_parameter(
    secured: Broker, world: World, who: str
) -> None:
    # EventSource cannot send headers, so the key rides in the query
    params = {} if who == "none" else {"api_key": headers(who).get("Authorization", "x y")[7:]}
    expected = {"none": 401, "wrong": 401, "read": 200, "resolve": 403, "other": 404}
    expected["admin"] = 200
    with (
        httpx.Client(base_url=secured.url, timeout=30) as client,
        client.stream("GET", f"/runs/{world.run_id}/events", params=params) as r,
    ):
        assert r.status_code == expected[who]
        if r.status_code == 200:
            assert r.headers["content-type"].startswith("text/event-stream")


@pytest.mark.parametrize("who", WHO)
def test_websocket_takes_the_key_as_a_query_parameter(
    secured: Broker, world: World, who: str
) -> None:
    async def first_frames() -> tuple[list[dict[str, Any]], int | None]:
        key = headers(who).get("Authorization", "Bearer ")[7:]
        query = f"?after=0&api_key={key}" if key else "?after=0"
        url = secured.url.replace("http://", "ws://") + "/ws" + query
        frames: list[dict[str, Any]] = []
        async with connect(url) as ws:
            try:
                while True:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
                    frames.append(frame)
                    if frame["type"] in ("live", "error"):
                        break
                if frame["type"] == "error":
                    await asyncio.wait_for(ws.recv(), 30)
            except Exception:
                pass
            return frames, ws.close_code

    frames, close_code = asyncio.run(first_frames())
    last = frames[-1]
    if who in ("none", "wrong"):
        assert (last["type"], last["code"], close_code) == ("error", "unauthorized", 1008)
    elif who == "resolve":
        assert (last["type"], last["code"], close_code) == ("error", "forbidden", 1008)
    else:
        assert last["type"] == "live"
        agents = {f.get("agent_id") for f in frames[:-1]}
        if who == "other":
            assert agents <= {"naming"}  # the replay holds none of the counter's events
        else:
            assert "counter" in agents


def test_docs_and_action_link_pages_stay_open(secured: Broker) -> None:
    assert httpx.get(f"{secured.url}/openapi.json").status_code == 200
    # an unknown link is a page saying so, not a 401
    r = httpx.get(f"{secured.url}/links/v1.bogus.token")
    assert r.status_code == 404
    assert "not valid" in r.text


# Starting up


def _api_exit(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker.cli", "api", "--port", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_api_refuses_to_start_without_keys(redis_url: str, tmp_path: Path) -> None:
    result = _api_exit(broker_env(redis_url, "ibtnokeys", BROKER_AUTH="on"), tmp_path)
    assert result.returncode == 2
    assert "no API keys are configured" in result.stderr
    assert "BROKER_AUTH=off" in result.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"BROKER_API_KEYS": '[{"id": "a", "key": "plain", "scopes": ["admin"]}]'}, "plaintext"),
        ({"BROKER_API_KEYS": '[{"id": "a", "key_sha256": "abc", "scopes": ["admin"]}]'}, "64 hex"),
        ({"BROKER_LINK_SECRET": "changeme-changeme-changeme-123"}, "BROKER_LINK_SECRET"),
        ({"BROKER_LINK_SECRET": "short"}, "at least 24"),
        (
            {"BROKER_WEBHOOKS": '[{"id": "w", "url": "https://x.test/", "secret": "whsec_YQ=="}]'},
            "webhook",
        ),
        ({"BROKER_EXPIRY": '[{"agent": "naming", "expires_in": -1}]'}, "expires_in"),
        ({"BROKER_API_KEYS": "{"}, "BROKER_API_KEYS is not valid JSON"),
        ({"BROKER_WEBHOOKS": "{}"}, "BROKER_WEBHOOKS must be a JSON list"),
        ({"BROKER_THREAD_LOCK_TTL_S": "0"}, "thread_lock_ttl_s"),
        ({"BROKER_PUBLIC_URL": "broker.example.com"}, "public_url"),
    ],
)
def test_api_refuses_unusable_configuration(
    redis_url: str, tmp_path: Path, extra: dict[str, str], message: str
) -> None:
    keys = keys_json() if "BROKER_API_KEYS" not in extra else extra["BROKER_API_KEYS"]
    env = broker_env(redis_url, "ibtbadcfg", BROKER_AUTH="on", **{**extra, "BROKER_API_KEYS": keys})
    result = _api_exit(env, tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_dev_serves_open_only_on_loopback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "broker.cli", "dev", "--host", "0.0.0.0", "--port", "0"],
        cwd=tmp_path,
        env={k: v for k, v in broker_env("redis://127.0.0.1:1", "x").items() if k != "BROKER_AUTH"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "without authentication" in result.stderr


def test_keys_are_held_as_digests_and_checked_in_full() -> None:
    ring = auth.KeyRing.from_settings(Settings(api_keys=keys_json()))
    assert all(len(k.key_sha256) == 64 for k in ring.keys)
    assert not any(key in repr(ring.keys) for key, _, _ in KEYS.values())
    read_key = KEYS["read"][0]
    principal = ring.authenticate(read_key)
    assert principal is not None and principal.key_id == "read"
    assert ring.authenticate(read_key[:-1]) is None
    assert ring.authenticate(read_key + "x") is None
    assert ring.authenticate("") is None
    assert ring.authenticate(None) is None


def test_plaintext_keys_only_in_dev_mode() -> None:
    entry = '[{"id": "dev", "key": "devkey", "scopes": ["admin"]}]'
    with pytest.raises(auth.KeyConfigError, match="plaintext"):
        auth.KeyRing.from_settings(Settings(api_keys=entry))
    ring = auth.KeyRing.from_settings(Settings(api_keys=entry, dev=True))
    assert ring.authenticate("devkey") is not None


def test_an_admin_key_cannot_be_limited_to_agents() -> None:
    entry = json.dumps(
        [{"id": "x", "key_sha256": "0" * 64, "scopes": ["admin"], "agents": ["naming"]}]
    )
    with pytest.raises(auth.KeyConfigError, match="admin"):
        auth.KeyRing.from_settings(Settings(api_keys=entry))


def test_auth_off_is_explicit() -> None:
    assert auth.KeyRing.from_settings(Settings()).authenticate(None) is None
    assert auth.KeyRing.from_settings(Settings(auth="off")).authenticate(None) is auth.OPEN


def test_keys_and_link_tokens_in_urls_stay_out_of_the_logs(secured: Broker, world: World) -> None:
    key = KEYS["read"][0]
    with (
        httpx.Client(base_url=secured.url, timeout=30) as client,
        client.stream("GET", f"/runs/{world.run_id}/events", params={"api_key": key}) as r,
    ):
        assert r.status_code == 200

    async def ws() -> None:
        url = secured.url.replace("http://", "ws://") + f"/ws?api_key={key}"
        async with connect(url) as conn:
            assert json.loads(await asyncio.wait_for(conn.recv(), 30))["type"] == "live"

    asyncio.run(ws())
    httpx.get(f"{secured.url}/links/v1.some-link-token.sig")
    api = secured.api
    assert api is not None

    def logged() -> str | None:
        out = api.output()
        return out if out.count("api_key=***") >= 2 else None

    log = wait_until(logged, "the SSE and WebSocket requests in the API's log")
    assert key not in log
    assert "some-link-token" not in log
    assert "/links/***" in log
