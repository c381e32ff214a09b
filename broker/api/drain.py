"""Graceful drain: on SIGTERM (or SIGINT) live streams end with a reconnect hint first.

The server's own graceful shutdown (uvicorn: ``timeout_graceful_shutdown``) stops
accepting connections and lets in-flight requests finish, but it would cut SSE and
WebSocket streams off (WebSockets with a bare 1012). So the API chains itself in front
of the server's signal handler: the signal sets the drain flag, which every stream
watches (through the event hub); each sends its reconnect hint (``shutting_down``,
with ``resume_from``) and ends; then, once no stream is left or after ``HAND_OVER_S``,
the server's handler runs and its shutdown proceeds as usual. A second signal is passed
on at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger("broker.api.drain")

# Longest the server's shutdown waits for streams to send their hint and end.
HAND_OVER_S = 3.0

Handler = Callable[[int, FrameType | None], Any]


class Drain:
    """The drain flag, the count of live streams, and the signal hook."""

    def __init__(self, begin: Callable[[], None], live: Callable[[], int]) -> None:
        """``begin`` ends the live streams (in the event loop); ``live`` counts them."""
        self.draining = False
        self._begin = begin
        self._live = live
        self._task: asyncio.Task[None] | None = None

    def begin(self) -> None:
        if self.draining:
            return
        self.draining = True
        log.info("draining: %d live stream(s) get a reconnect hint", self._live())
        self._begin()

    def install(self) -> None:
        """Chains the drain in front of the current SIGTERM and SIGINT handlers.

        Only in the main thread, and only in front of a handler that is a function
        (a server's); elsewhere the server's shutdown runs as it would without it.
        """
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                previous = signal.getsignal(sig)
                if not callable(previous):
                    continue
                signal.signal(sig, self._handler(loop, previous))
            except ValueError:  # not the main thread
                return

    def _handler(self, loop: asyncio.AbstractEventLoop, previous: Handler) -> Handler:
        def handle(sig: int, frame: FrameType | None) -> None:
            if self.draining:
                previous(sig, frame)  # a second signal: no more waiting
                return
            loop.call_soon_threadsafe(self._start, previous, sig)

        return handle

    def _start(self, previous: Handler, sig: int) -> None:
        self.begin()
        self._task = asyncio.ensure_future(self._hand_over(previous, sig))

    async def _hand_over(self, previous: Handler, sig: int) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + HAND_OVER_S
        while self._live() and loop.time() < end:
            await asyncio.sleep(0.02)
        previous(sig, None)
