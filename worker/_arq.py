"""The one place the worker relies on arq beyond its public API.

arq polls its queue every ``poll_delay``. The API also publishes on a wake channel
whenever it queues a job; this worker listens on it and runs one poll at once, so an
idle worker starts the job without waiting out the delay, and the delay only bounds
how late a missed wake-up can be. arq's own loop (``Worker.main``) runs unchanged.

The private part is ``Worker._poll_iteration``: checked against the arq versions
``pyproject.toml`` allows (``ARQ_CHECKED``), which tests/test_worker_arq.py asserts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from arq import Worker

log = logging.getLogger("worker")

ARQ_CHECKED = ("0.26", "0.27", "0.28")
Hook = Callable[[dict[str, Any]], Awaitable[Any]]


class BrokerWorker(Worker):
    """An arq worker that also polls as soon as the wake channel fires."""

    _listener: asyncio.Task[None] | None = None

    def __init__(
        self, *args: Any, wake_channel: str, wake_redis: aioredis.Redis, **kwargs: Any
    ) -> None:
        startup: Hook | None = kwargs.pop("on_startup", None)
        shutdown: Hook | None = kwargs.pop("on_shutdown", None)

        async def on_startup(ctx: dict[str, Any]) -> None:
            if startup:
                await startup(ctx)
            self._listener = asyncio.create_task(self._listen())

        async def on_shutdown(ctx: dict[str, Any]) -> None:
            if self._listener is not None:
                self._listener.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._listener
            if shutdown:
                await shutdown(ctx)
            await self.wake_redis.aclose()

        super().__init__(*args, on_startup=on_startup, on_shutdown=on_shutdown, **kwargs)
        self.wake_channel = wake_channel
        # a client of its own: pub/sub waits without a socket timeout
        self.wake_redis = wake_redis

    async def _listen(self) -> None:
        polling = asyncio.Lock()
        while True:
            try:
                async with self.wake_redis.pubsub() as ps:
                    await ps.subscribe(self.wake_channel)
                    async for message in ps.listen():
                        if message.get("type") != "message" or polling.locked():
                            continue  # a poll already under way picks the new job up too
                        async with polling:
                            await self._poll_iteration()
            except asyncio.CancelledError:
                raise
            except Exception:
                # Redis went away: arq's own polling still runs; resubscribe when it is back
                log.debug("wake channel lost; resubscribing", exc_info=True)
                await asyncio.sleep(1)
