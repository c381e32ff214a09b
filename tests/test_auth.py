"""API keys: how they are configured, presented, checked, audited and kept out of logs.

A real API process and worker with auth on. Keys are configured as SHA-256 digests, as
production would. Which route answers which principal, and what a key limited to some
agents can see, is the matrix of tests/test_isolation.py.
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

import httpx
import pytest
from websockets.asyncio.client import connect

from broker.core import auth, secret
from broker.core.settings import Settings
from tests import principals
from tests.flow import next_interrupt, wait_status
from tests.harness import Broker, broker_env, delete_prefix, wait_until

pytestmark = pytest.mark.slow

KEYS: dict[str, principals.KeySpec] = {
    "read": ("k-read-" + uuid.uuid4().hex, [auth.READ], None),
    "resolve": ("k-resolve-" + uuid.uuid4().hex, [auth.RESOLVE], None),
    "other": (
        "k-other-" + uuid.uuid4().hex,
        [auth.READ, auth.RESOLVE, auth.RUNS_WRITE],
        ["naming"],
    ),
    "admin": ("k-admin-" + uuid.uuid4().hex, [auth.ADMIN], None),
    # a service answering for the people it serves, who it names in resolved_by
    "service": ("k-service-" + uuid.uuid4().hex, [auth.RESOLVE, auth.ON_BEHALF], None),
}


def keys_json() -> str:
    return principals.keys_json(KEYS)


def headers(who: str) -> dict[str, str]:
    return principals.headers(KEYS, who)


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
        headers=headers("service"),
    )
    assert r.status_code == 200, r.text
    resolution = r.json()["resolution"]
    assert resolution["key_id"] == "service"
    assert resolution["resolved_by"] == "ada@example.com"
    assert resolution["person"] is None
    wait_status(admin, run_id, "succeeded")


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
        ({"BROKER_LEASE_TTL_S": "0"}, "lease_ttl_s"),
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
