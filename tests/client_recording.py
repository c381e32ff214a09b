"""Every request a Python client sends, recorded, to check that a test module's calls
reach every public route of the broker (tests/routes.py).

HTTP requests (REST, the run's SSE, AG-UI) are seen by an httpx request hook passed
through the client's httpx options. ``WS /ws`` opens its own connection with the
websockets package, whose client logs each handshake's request line at debug level:
that log is read, so the client is used exactly as its users use it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.routes import Operation, unreached

WS_LOGGER = "websockets.client"
HANDSHAKE = "> GET %s HTTP/1.1"


class Recorder(logging.Handler):
    """The (method, path) of each request seen, in order."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def _add(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))

    def on_request(self, request: httpx.Request) -> None:
        self._add(request.method, request.url.path)

    async def on_async_request(self, request: httpx.Request) -> None:
        self.on_request(request)

    def hooks(self) -> dict[str, Any]:
        """``event_hooks`` for an ``httpx.Client`` (``Client(..., event_hooks=...)``)."""
        return {"request": [self.on_request]}

    def async_hooks(self) -> dict[str, Any]:
        """``event_hooks`` for an ``httpx.AsyncClient``."""
        return {"request": [self.on_async_request]}

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == HANDSHAKE and isinstance(record.args, tuple) and record.args:
            self._add("GET", str(record.args[0]).split("?", 1)[0])

    @contextlib.contextmanager
    def websockets(self) -> Iterator[Recorder]:
        """Records every WebSocket handshake made meanwhile (any client's, in this
        process: the module's only WebSocket client is the one under test)."""
        logger = logging.getLogger(WS_LOGGER)
        saved = (logger.level, logger.propagate)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False  # frames are logged at debug too: keep them out of reports
        logger.addHandler(self)
        try:
            yield self
        finally:
            logger.removeHandler(self)
            logger.setLevel(saved[0])
            logger.propagate = saved[1]

    def unreached(self, spec: dict[str, Any]) -> list[Operation]:
        with self._lock:
            return unreached(spec, list(self.requests))


def require_whole_module(request: pytest.FixtureRequest) -> None:
    """Skips a module's coverage test when only some of its tests were selected (``-k``,
    a node id): the routes are reached by the others."""
    module = request.node.module
    defined = {name for name in vars(module) if name.startswith("test_")}
    selected = {
        item.originalname
        for item in request.session.items
        if isinstance(item, pytest.Function) and item.module is module
    }
    if selected != defined:
        pytest.skip("the route coverage of a module needs all of its tests to run")


def coverage_report(missing: list[Operation]) -> str:
    lines = "\n".join(f"  {method} {path}" for method, path in missing)
    return (
        f"{len(missing)} public route(s) no test of this module reached through the "
        f"client (a route the client lacks needs a method, and a test that calls it):"
        f"\n{lines}"
    )
