"""Outermost middleware: what each request's log lines are about.

Installed only with ``BROKER_LOG_FORMAT=json``, so it costs nothing otherwise. Each
request begins a fresh set of log ids (broker/core/logs.py), to which its path
parameters count once routed; what the handlers learn (``telemetry.bind``) is added to
the same set, so uvicorn's access line, written as the response goes out, carries it.
Request spans are FastAPI's own: with a tracer provider set up (broker/core/telemetry.py)
it makes a server span per request, under the caller's ``traceparent``.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from broker.core import logs


class LogIds:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        ids = logs.begin(scope)
        try:
            await self.app(scope, receive, send)
        finally:
            logs.end(ids)
