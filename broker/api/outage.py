"""Outages answer 503, never 500: Redis down, full, read-only, loading or stalled.

A pure ASGI middleware, outermost, so it covers every route, the auth gate, streaming
bodies and WebSockets alike:

- before a response has started: ``503`` with the JSON error shape
  (``redis_unavailable``) and ``Retry-After``;
- a streaming body already under way (its routes send their own reconnect hint first)
  ends cleanly instead of resetting the connection;
- a WebSocket gets an error frame and close code 1013 ("try again later").

Any other exception passes on unchanged, to the server's 500 handling.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from broker.core import errors

log = logging.getLogger("broker.api.outage")

Scope = dict[str, Any]


class OutageGuard:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        state = {"started": False, "closed": False}

        async def tracking_send(message: dict[str, Any]) -> None:
            kind = message["type"]
            if kind in ("http.response.start", "websocket.accept"):
                state["started"] = True
            elif kind == "websocket.close" or (
                kind == "http.response.body" and not message.get("more_body", False)
            ):
                state["closed"] = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            error = errors.unavailable(exc)
            if error is None:
                raise
            log.warning("%s %s: %s", scope["type"], scope.get("path"), error.message)
            if state["closed"]:
                return
            if scope["type"] == "http":
                await _http(send, error, started=state["started"])
            else:
                await _websocket(send, error, accepted=state["started"])


async def _http(send: Any, error: errors.BrokerError, *, started: bool) -> None:
    if started:
        # a body is under way and its status is sent: end it cleanly
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    body = json.dumps(error.body()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(errors.RETRY_AFTER_S).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def ws_error_frame(error: errors.BrokerError, resume_from: str | None) -> str:
    """The frame a WebSocket gets before close code 1013: reconnect with ``after=``."""
    frame: dict[str, Any] = {
        "type": "error",
        "code": error.code,
        "message": error.message,
        "retry_after": errors.RETRY_AFTER_S,
    }
    if resume_from is not None:
        frame["resume_from"] = resume_from
    return json.dumps(frame)


async def _websocket(send: Any, error: errors.BrokerError, *, accepted: bool) -> None:
    try:
        if not accepted:
            await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": ws_error_frame(error, None)})
        await send({"type": "websocket.close", "code": 1013, "reason": error.code})
    except Exception:  # the client is gone already
        log.debug("could not tell the WebSocket client", exc_info=True)
