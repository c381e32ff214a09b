"""A local stand-in for Slack's Web API that slack_sdk's client talks to, and the
signed interactivity requests Slack would send: for tests/test_slack*.py."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode

import httpx
from slack_sdk.signature import SignatureVerifier

from tests.flow import next_interrupt, start
from tests.harness import free_port, wait_until

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


class Recorder:
    """Slack's Web API as slack_sdk calls it: every method answers ``ok`` and is kept."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.n = 0

    def record(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.calls.append((method, body))
            self.n += 1
            ts = f"1700000000.{self.n:06d}"
        return {"ok": True, "channel": body.get("channel"), "ts": ts}

    def of(self, method: str, iid: str) -> list[dict[str, Any]]:
        with self.lock:
            return [b for m, b in self.calls if m == method and iid in json.dumps(b)]


@contextlib.contextmanager
def serving() -> Iterator[tuple[Recorder, str]]:
    """The stand-in on a local port: its recorder and the API URL to give the broker."""
    rec = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            body = json.loads(raw) if raw else {}
            out = json.dumps(rec.record(self.path.rsplit("/", 1)[1], body)).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield rec, f"http://127.0.0.1:{server.server_port}/api/"
    finally:
        server.shutdown()
        server.server_close()


def posted(rec: Recorder, iid: str) -> dict[str, Any]:
    return wait_until(lambda: (rec.of("chat.postMessage", iid) or [None])[0], "the Slack post")


def buttons(message: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(action id, value, text) of each button of the message."""
    return [
        (e["action_id"], e["value"], e["text"]["text"])
        for b in message["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    ]


def send(
    api: httpx.Client, payload: dict[str, Any], *, secret: str = SECRET, age_s: int = 0
) -> httpx.Response:
    body = urlencode({"payload": json.dumps(payload)})
    ts = str(int(time.time()) - age_s)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return api.post(
        "/slack/interactivity",
        content=body,
        headers={
            "content-type": "application/x-www-form-urlencoded",
            "x-slack-request-timestamp": ts,
            "x-slack-signature": signature or "",
        },
    )


def click(user: str, action_id: str, value: str, reply: str | None = None) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "response_url": reply,
        "user": {"id": user, "username": user.lower()},
        "trigger_id": f"trigger-{uuid.uuid4().hex[:6]}",
        "actions": [{"action_id": action_id, "value": value, "type": "button"}],
    }


def submit(user: str, view: dict[str, Any], text: str) -> dict[str, Any]:
    state = {"values": {"answer": {"text": {"type": "plain_text_input", "value": text}}}}
    return {"type": "view_submission", "user": {"id": user}, "view": {**view, "state": state}}


def replies(rec: Recorder, iid: str) -> list[dict[str, Any]]:
    """What was sent to the response_url ``.../response/<iid>`` of a click."""
    return rec.of(iid, "")


def opened(rec: Recorder, iid: str) -> dict[str, Any]:
    view: dict[str, Any] = wait_until(
        lambda: (rec.of("views.open", iid) or [None])[-1], "the modal"
    )["view"]
    return view


def updated(rec: Recorder, iid: str, text: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        return next((u for u in rec.of("chat.update", iid) if text in json.dumps(u)), None)

    return wait_until(found, "the message update")


def asked(
    api: httpx.Client, agent: str, text: str | None = None
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """A run of ``agent`` (``text``: the user's message) at its first question: the run,
    the interrupt, and the value its message's buttons carry (its id and fingerprint)."""
    run = start(api, agent, {"messages": [{"role": "user", "content": text}]} if text else {})
    h = next_interrupt(api, run["run_id"])
    return run, h, f"{h['id']} {h['fingerprint']}"


def slack_env(api_url: str, routes: list[Any], users: dict[str, str]) -> dict[str, str]:
    """A broker's Slack settings against the stand-in at ``api_url``."""
    return {
        "BROKER_SLACK_BOT_TOKEN": "xoxb-test",
        "BROKER_SLACK_SIGNING_SECRET": SECRET,
        "BROKER_SLACK_API_URL": api_url,
        "BROKER_SLACK_ROUTES": json.dumps(routes),
        "BROKER_SLACK_USERS": json.dumps(users),
    }
