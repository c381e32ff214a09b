"""The FastAPI application: lifespan-owned connections, routes, and the error shape."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException

from agent.registry import load_registry
from broker.api import events
from broker.api.events import EventHub
from broker.api.gate import AuthGate
from broker.api.routes import (
    admin,
    agents,
    agui,
    health,
    interrupts,
    links,
    metrics,
    runs,
    stream,
    ui,
)
from broker.api.threads import ThreadStates
from broker.core import config, errors
from broker.core.connections import queue_pool, redis_client, watch_primary
from broker.core.keys import Keys
from broker.core.saver import RedisCheckpointSaver
from broker.core.settings import Settings, get_settings
from broker.core.store import Store

log = logging.getLogger("broker")


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Builds the API; connections open in the lifespan, never at import."""
    settings = settings or get_settings()
    # refuse unusable keys, secrets and subscriptions now, not at the first request
    checked = config.check(settings, "api")
    keyring, webhook_config = checked.keyring, checked.webhooks

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

    app = FastAPI(
        title="Interrupt broker",
        version="0.1.0",
        summary="Durable, shared LangGraph interrupts, answerable from anywhere.",
        lifespan=lifespan,
    )
    for module in (agents, runs, interrupts, stream, agui, links, admin, health, ui, metrics):
        app.include_router(module.router)
    app.mount("/static", ui.assets, name="static")
    app.state.webhook_config = webhook_config
    app.state.keyring = keyring
    app.add_middleware(AuthGate, keyring=keyring)

    @app.exception_handler(errors.BrokerError)
    async def broker_error(_: Request, exc: errors.BrokerError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status_code)

    @app.exception_handler(RedisError)
    async def redis_error(_: Request, exc: RedisError) -> JSONResponse:
        # no primary, a demoted one, a failover under way: the client retries
        log.warning("Redis unavailable: %s", exc)
        return _error(503, "redis_unavailable", errors.REDIS_UNAVAILABLE_MESSAGE)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(422, "invalid_request", f"{where}: {first.get('msg')}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail))

    return app
