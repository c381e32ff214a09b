"""The FastAPI application: lifespan-owned connections, routes, and the error shape."""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from agent.registry import load_registry
from broker.api import events, openapi
from broker.api.drain import Drain
from broker.api.events import EventHub
from broker.api.gate import AuthGate
from broker.api.langgraph import routers as langgraph_routers
from broker.api.observe import LogIds
from broker.api.outage import OutageGuard
from broker.api.routes import (
    admin,
    agents,
    agui,
    assignment,
    bulk,
    health,
    identity,
    interrupts,
    jwks,
    links,
    metrics,
    runs,
    slack,
    stream,
    ui,
    undo,
)
from broker.api.threads import ThreadStates
from broker.core import config, errors, telemetry
from broker.core.connections import queue_pool, redis_client, watch_primary
from broker.core.keys import Keys
from broker.core.saver import RedisCheckpointSaver
from broker.core.settings import Settings, get_settings
from broker.core.store import Store

log = logging.getLogger("broker")


def _error(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def _allowed(app: FastAPI, path: str) -> str:
    """Every method some route serves at ``path`` (routing names only the first route's)."""
    methods: set[str] = set()
    for route in iter_route_contexts(app.routes):
        if route.methods and route.path and compile_path(route.path)[0].match(path):
            methods |= route.methods
    return ", ".join(sorted(methods))


# probes and scrapes: no span of their own
UNTRACED = frozenset({"/healthz", "/readyz", "/metrics"})


def _spans() -> dict[str, Any]:
    # FastAPI (0.165 and later) makes a server span per request once a tracer provider is
    # set up; not also one per dependency, endpoint and serialization step
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:
        untraced = {"operation_spans": False, "exclude": lambda s: s["path"] in UNTRACED}
        return {"telemetry": untraced}
    return {}


# the response headers a page on another origin may read
EXPOSED = ["ETag", "Location", "Content-Location", "Retry-After"]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Builds the API; connections open in the lifespan, never at import."""
    settings = settings or get_settings()
    # refuse unusable keys, secrets and subscriptions now, not at the first request
    checked = config.check(settings, "api")
    keyring, webhook_config = checked.keyring, checked.webhooks
    # spans go to the OTLP exporter, FastAPI's per request too (broker/core/telemetry.py)
    telemetry.setup("api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        keys = Keys(settings.key_prefix)
        watcher = watch_primary(settings)
        client = redis_client(settings)
        queue = queue_pool(settings, keys.queue)
        app.state.settings = settings
        app.state.store = Store(client, settings)
        app.state.queue = queue
        app.state.registry = load_registry(settings.langgraph_json, settings.agents)
        saver_client = redis_client(settings, decode=False)
        saver = RedisCheckpointSaver(saver_client, keys)
        app.state.threads = ThreadStates(
            {aid: spec.graph for aid, spec in app.state.registry.items()}, saver
        )
        hub_client = redis_client(settings, block_s=events.BLOCK_MS / 1000)
        app.state.hub = EventHub(hub_client, keys.events)
        await app.state.hub.start()
        # on SIGTERM, live streams get a reconnect hint before the server shuts down
        hub = app.state.hub
        app.state.drain = Drain(hub.drain, lambda: len(hub.subs))
        app.state.drain.install()
        log.info("broker API ready; agents: %s", ", ".join(app.state.registry))
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
            await app.state.hub.stop()
            await hub_client.aclose()
            await saver_client.aclose()
            await queue.aclose()
            await client.aclose()
            telemetry.flush()

    app = FastAPI(
        title="Interrupt broker",
        version="0.1.0",
        summary="Durable, shared LangGraph interrupts, answerable from anywhere.",
        lifespan=lifespan,
        **_spans(),
    )
    for module in (
        agents,
        runs,
        interrupts,
        bulk,
        assignment,
        undo,
        stream,
        agui,
        links,
        slack,
        admin,
        identity,
        jwks,
        health,
        ui,
        metrics,
    ):
        app.include_router(module.router)
    for router in langgraph_routers:
        app.include_router(router)
    app.mount("/static", ui.assets, name="static")
    app.state.webhook_config = webhook_config
    app.state.keyring = keyring
    app.state.verifier = checked.verifier
    app.state.slack = checked.slack
    app.add_middleware(AuthGate, keyring=keyring, verifier=checked.verifier)
    # outermost: a Redis outage anywhere (the gate, a route, a stream) answers 503
    app.add_middleware(OutageGuard)
    if settings.cors_origins:
        # outside the gate: a preflight carries no key, and a refusal must be readable
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["*"],
            expose_headers=EXPOSED,
            max_age=600,
        )
    if settings.log_format == "json":
        app.add_middleware(LogIds)

    @app.exception_handler(errors.BrokerError)
    async def broker_error(_: Request, exc: errors.BrokerError) -> JSONResponse:
        retry = {"Retry-After": str(errors.RETRY_AFTER_S)} if exc.status_code == 503 else None
        return JSONResponse(exc.body(), status_code=exc.status_code, headers=retry)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(422, "invalid_request", f"{where}: {first.get('msg')}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed(app, request.url.path)
        return _error(exc.status_code, code, str(exc.detail), headers)

    generated = app.openapi
    auth_on = keyring.enabled

    def document() -> dict[str, Any]:
        """The generated document, finished once: see broker/api/openapi.py."""
        if not getattr(app.state, "openapi_finished", False):
            openapi.finish(generated(), auth_on=auth_on)
            app.state.openapi_finished = True
        return generated()

    app.openapi = document  # type: ignore[method-assign]

    return app
