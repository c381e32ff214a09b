"""The per-thread lock: the graph never runs twice at once on one thread."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator

import redis.asyncio as aioredis

from broker.scripts import RELEASE_LOCK, RENEW_LOCK


class LockBusy(Exception):
    """Another worker holds the thread; the job should retry later."""


@contextlib.asynccontextmanager
async def thread_lock(
    r: aioredis.Redis, key: str, *, ttl_s: int, wait_s: float
) -> AsyncIterator[None]:
    """Holds ``key`` under a random token, renewing it while the body runs.

    If the holder dies the lock lapses after ``ttl_s``; waits up to ``wait_s`` for it.
    """
    token = secrets.token_hex(16)
    ttl_ms = ttl_s * 1000
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    delay = 0.005
    while not await r.set(key, token, nx=True, px=ttl_ms):
        if loop.time() >= deadline:
            raise LockBusy(key)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.2)

    async def renew() -> None:
        while True:
            await asyncio.sleep(ttl_s / 3)
            await r.eval(RENEW_LOCK, 1, key, token, ttl_ms)

    renewer = asyncio.create_task(renew())
    try:
        yield
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
        # shielded so a cancelled job still frees the thread at once
        await asyncio.shield(r.eval(RELEASE_LOCK, 1, key, token))
