"""The auth gate: every request needs a valid API key, except a short list of open paths.

Being an ASGI middleware, it covers every route, including ones added later, so a new
endpoint is closed until it is listed as open. It binds the request's principal (for
``Principal`` dependencies and for the store, which checks scopes on every answer).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import parse_qs

from broker.core import auth

# Liveness and readiness, the API docs, the dashboard page and its assets (the page asks
# for a key itself), and action links (their signed token is the credential).
OPEN_PATHS = frozenset({"/", "/healthz", "/readyz", "/favicon.ico", "/docs", "/redoc"})
OPEN_PREFIXES = ("/openapi.json", "/docs/", "/static/", "/links/")
# Browsers cannot set headers on EventSource or WebSocket: these accept ?api_key=.
QUERY_KEY_HTTP = re.compile(r"^/runs/[^/]+/events$")

Scope = dict[str, Any]


_CREDENTIAL_IN_PATH = re.compile(r"(api_key=)[^&\s]+|(/links/)[^/?\s]+")


def redact(path: str) -> str:
    """The path with API keys in the query and action link tokens replaced by ***."""
    return _CREDENTIAL_IN_PATH.sub(lambda m: f"{m.group(1) or m.group(2)}***", path)


class RedactCredentials(logging.Filter):
    """Keeps ``?api_key=`` values and link tokens out of uvicorn's request logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def presented_key(scope: Scope) -> str | None:
    """The key a request carries: ``Authorization: Bearer``, ``X-API-Key``, or the query."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    bearer = headers.get("authorization", "")
    scheme, _, value = bearer.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if headers.get("x-api-key"):
        return headers["x-api-key"].strip()
    if scope["type"] == "websocket" or QUERY_KEY_HTTP.match(scope["path"]):
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        values = query.get("api_key")
        if values and values[0]:
            return values[0]
    return None


class AuthGate:
    def __init__(self, app: Any, keyring: auth.KeyRing) -> None:
        self.app = app
        self.keyring = keyring

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or (
            scope["type"] == "http" and is_open(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        presented = presented_key(scope)
        principal = self.keyring.authenticate(presented)
        if principal is None:
            message = (
                "this API key is not valid"
                if presented
                else "send an API key: `Authorization: Bearer <key>` or `X-API-Key: <key>`"
            )
            if scope["type"] == "websocket":
                await _refuse_websocket(receive, send, message)
            else:
                await _refuse_http(send, message)
            return
        scope.setdefault("state", {})["principal"] = principal
        token = auth.bind(principal)
        try:
            await self.app(scope, receive, send)
        finally:
            auth.unbind(token)


def _error(message: str) -> bytes:
    return json.dumps({"error": {"code": "unauthorized", "message": message}}).encode()


async def _refuse_http(send: Any, message: str) -> None:
    body = _error(message)
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b'Bearer realm="interrupt-broker"'),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _refuse_websocket(receive: Any, send: Any, message: str) -> None:
    # accept first: a close before accept reaches a browser as a bare failed handshake,
    # with no way to read why
    connect = await receive()
    if connect.get("type") != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    frame = {"type": "error", "code": "unauthorized", "message": message}
    await send({"type": "websocket.send", "text": json.dumps(frame)})
    await send({"type": "websocket.close", "code": 1008, "reason": "unauthorized"})
