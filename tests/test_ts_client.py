"""The TypeScript client (clients/ts) against a real broker: pytest starts the broker
(an API, a worker, webhooks signed for a receiver the node tests run, action links, an
undo window) and a second one with auth on, then node's own test runner drives every
public method of the client from clients/ts/test/ and must pass. A control endpoint
lets the node tests have the API process killed or stopped, and a new one started, in
the middle of a stream. The node tests record every request their clients send; together
they must reach every public route of the broker's OpenAPI document and the WebSocket."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from broker.core import signing
from tests.client_broker import UNDO_AGENT, client_broker
from tests.harness import Broker, delete_prefix, free_port
from tests.routes import unreached

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "clients" / "ts"
SECRET = signing.new_secret()
HOOK = "/hook/tsclient"
HOOK_ID = "tsclient"
NODE_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def hook_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def broker(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory, hook_port: int
) -> Iterator[Broker]:
    b = client_broker(
        redis_url,
        tmp_path_factory.mktemp("tsclient"),
        HOOK_ID,
        f"http://127.0.0.1:{hook_port}{HOOK}",
        SECRET,
    )
    with b.serving():
        yield b


# The auth broker's keys: every scope; reading only; starting runs only (no reading);
# reading and starting runs of one agent.
AUTH_SCOPES: dict[str, tuple[list[str], list[str] | None]] = {
    "full": (["admin"], None),
    "reader": (["interrupts:read"], None),
    "writer": (["runs:write"], None),
    "limited": (["interrupts:read", "runs:write"], ["counter"]),
}


@pytest.fixture(scope="module")
def auth_keys() -> dict[str, str]:
    return {name: f"ibk_{secrets.token_urlsafe(24)}" for name in AUTH_SCOPES}


@pytest.fixture(scope="module")
def auth_broker(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory, auth_keys: dict[str, str]
) -> Iterator[Broker]:
    """A broker with auth on: an API process and no worker (runs stay queued, and it is
    not ready), so the node tests see a key sent, refused, and a 503 readiness answer."""
    configured = []
    for name, (scopes, agents) in AUTH_SCOPES.items():
        digest = hashlib.sha256(auth_keys[name].encode()).hexdigest()
        entry: dict[str, object] = {"id": name, "key_sha256": digest, "scopes": scopes}
        if agents is not None:
            entry["agents"] = agents
        configured.append(entry)
    b = Broker(
        redis_url,
        f"ibt{uuid.uuid4().hex[:10]}",
        tmp_path_factory.mktemp("tsclient-auth"),
        BROKER_AUTH="on",
        BROKER_API_KEYS=json.dumps(configured),
    )
    try:
        b.start_api()
        yield b
    finally:
        b.stop()
        delete_prefix(redis_url, b.env["BROKER_KEY_PREFIX"])


@contextlib.contextmanager
def control(broker: Broker) -> Iterator[str]:
    """``POST /restart-api?how=kill|stop``: the API process goes away (SIGKILL: every
    connection drops at once; SIGTERM: live streams end with a reconnect hint) and a
    new one takes its port; answered once the new one serves."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            assert broker.api is not None
            broker.api.kill() if self.path.endswith("how=kill") else broker.api.stop()
            broker.start_api()
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def node_flags() -> list[str]:
    """Node 22 has a global WebSocket; Node 20 and 21 have it behind a flag."""
    version = subprocess.run(
        ["node", "--version"], capture_output=True, text=True, check=True
    ).stdout
    major = int(version.strip().lstrip("v").split(".")[0])
    return ["--experimental-websocket"] if major < 22 else []


def recorded(path: Path) -> list[tuple[str, str]]:
    """The requests the node tests' clients sent: one JSON line each."""
    lines = path.read_text().splitlines() if path.exists() else []
    return [(r["method"], r["path"]) for r in map(json.loads, lines)]


def test_the_typescript_client_passes_its_tests_against_a_real_broker(
    broker: Broker,
    auth_broker: Broker,
    auth_keys: dict[str, str],
    hook_port: int,
    tmp_path: Path,
) -> None:
    node = shutil.which("node")
    assert node is not None, "node is needed for the TypeScript client's tests"
    test_files = sorted(str(p.relative_to(PACKAGE)) for p in (PACKAGE / "test").glob("*.test.js"))
    requests_file = tmp_path / "requests.jsonl"
    env = {
        **os.environ,
        "BROKER_URL": broker.url,
        "WEBHOOK_SECRET": SECRET,
        "WEBHOOK_PORT": str(hook_port),
        "WEBHOOK_PATH": HOOK,
        "WEBHOOK_ID": HOOK_ID,
        "UNDO_AGENT": UNDO_AGENT,
        "AUTH_BROKER_URL": auth_broker.url,
        "AUTH_KEYS": json.dumps(auth_keys),
        "CLIENT_REQUESTS_FILE": str(requests_file),
    }
    with control(broker) as control_url:
        done = subprocess.run(
            [node, *node_flags(), "--test", "--test-concurrency=1", *test_files],
            cwd=PACKAGE,
            env={**env, "CONTROL_URL": control_url},
            capture_output=True,
            text=True,
            timeout=NODE_TIMEOUT_S,
        )
    report = f"{done.stdout[-20000:]}\n{done.stderr}"
    assert done.returncode == 0, f"node --test failed:\n{report}"
    assert "# skipped 0" in done.stdout and "# pass 0" not in done.stdout, report

    spec = httpx.get(f"{broker.url}/openapi.json", timeout=10).raise_for_status().json()
    missed = unreached(spec, recorded(requests_file))
    assert missed == [], "the TypeScript client's tests reach none of these public routes:\n" + (
        "\n".join(f"  {method} {path}" for method, path in missed)
    )
