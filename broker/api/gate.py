"""The auth gate: every request needs a valid API key, or a person's token (a JWT from the
configured OpenID provider, ``broker/core/oidc.py``), except a short list of open paths.

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

from broker.core import auth, errors, oidc

# Liveness and readiness, the API docs, the dashboard page and its assets (the page asks
# for a key itself), how the dashboard signs people in, action links (their signed
# token is the credential), and Slack's interactivity requests (signed by Slack).
OPEN_PATHS = frozenset(
    {
        "/",
        "/healthz",
        "/readyz",
        "/favicon.ico",
        "/docs",
        "/redoc",
        "/auth/config",
        "/.well-known/jwks.json",
        "/slack/interactivity",
    }
)
OPEN_PREFIXES = ("/openapi.json", "/docs/", "/static/", "/links/")
# Browsers cannot set headers on EventSource or WebSocket: these accept ?api_key= (a key,
# or a person's token).
QUERY_KEY_HTTP = re.compile(r"^/runs/[^/]+/events$")

Scope = dict[str, Any]


_CREDENTIAL_IN_PATH = re.compile(r"(api_key=)[^&\s]+|(/links/)[^/?\s]+")


def redact(path: str) -> str:
    """The path with API keys in the query and action link tokens replaced by ***."""
    return _CREDENTIAL_IN_PATH.sub(lambda m: f"{m.group(1) or m.group(2)}***", path)


class RedactCredentials(logging.Filter):
    """Keeps ``?api_key=`` values (keys and people's tokens) and link tokens out of
    uvicorn's request logs."""

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
    def __init__(
        self, app: Any, keyring: auth.KeyRing, verifier: oidc.Verifier | None = None
    ) -> None:
        self.app = app
        self.keyring = keyring
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or (
            scope["type"] == "http" and is_open(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        presented = presented_key(scope)
        principal = self.keyring.authenticate(presented)
        if principal is None:
            refusal = Refusal(
                "this API key is not valid"
                if presented
                else "send an API key: `Authorization: Bearer <key>` or `X-API-Key: <key>`"
            )
            if presented and oidc.looks_like_jwt(presented):
                principal, refusal = await self._person(presented)
            if principal is None:
                if scope["type"] == "websocket":
                    await _refuse_websocket(receive, send, refusal)
                else:
                    await _refuse_http(send, refusal)
                return
        scope.setdefault("state", {})["principal"] = principal
        token = auth.bind(principal)
        try:
            await self.app(scope, receive, send)
        finally:
            auth.unbind(token)

    async def _person(self, token: str) -> tuple[auth.Principal | None, Refusal]:
        """The principal of a person's token, or why it is refused."""
        if self.verifier is None:
            return None, Refusal(
                "this bearer token is a JWT, but no OpenID provider is configured "
                "(BROKER_OIDC_ISSUER); send an API key",
                invalid_token=True,
            )
        try:
            return await self.verifier.principal(token), Refusal("")
        except oidc.InvalidToken as exc:
            return None, Refusal(str(exc), invalid_token=True)
        except oidc.ProviderUnavailable as exc:
            return None, Refusal(str(exc), status=503, code="identity_provider_unavailable")


class Refusal:
    """Why the gate turns a request away: 401 ``unauthorized`` unless said otherwise."""

    def __init__(
        self,
        message: str,
        *,
        invalid_token: bool = False,
        status: int = 401,
        code: str = "unauthorized",
    ) -> None:
        self.message = message
        self.status = status
        self.code = code
        challenge = 'Bearer realm="interrupt-broker"'
        if invalid_token:
            # RFC 6750, 3: the description is a quoted string of printable ASCII
            said = re.sub(r'[^\x20-\x7e]|["\\]', "'", message)[:300]
            challenge += f', error="invalid_token", error_description="{said}"'
        self.challenge = challenge


def _error(refusal: Refusal) -> bytes:
    return json.dumps({"error": {"code": refusal.code, "message": refusal.message}}).encode()


async def _refuse_http(send: Any, refusal: Refusal) -> None:
    body = _error(refusal)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if refusal.status == 401:
        headers.append((b"www-authenticate", refusal.challenge.encode()))
    else:
        headers.append((b"retry-after", str(errors.RETRY_AFTER_S).encode()))
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _refuse_websocket(receive: Any, send: Any, refusal: Refusal) -> None:
    # accept first: a close before accept reaches a browser as a bare failed handshake,
    # with no way to read why
    connect = await receive()
    if connect.get("type") != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    frame = {"type": "error", "code": refusal.code, "message": refusal.message}
    await send({"type": "websocket.send", "text": json.dumps(frame)})
    # 1008 policy violation; 1013 try again later, when the provider is unreachable
    close = 1008 if refusal.status == 401 else 1013
    await send({"type": "websocket.close", "code": close, "reason": refusal.code[:120]})
