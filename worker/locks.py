"""The per-thread lock: the graph never runs twice at once on one thread."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator

import redis.asyncio as aioredis

# Renew and release only while the lock still holds this holder's token.
RENEW_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

log = logging.getLogger("worker.locks")


class LockBusy(Exception):
    """Another worker holds the thread; the job should retry later."""


class LockLost(Exception):
    """The lock could not be renewed in time; the attempt was stopped."""


@contextlib.asynccontextmanager
async def thread_lock(
    r: aioredis.Redis, key: str, *, ttl_s: int, wait_s: float
) -> AsyncIterator[None]:
    """Holds ``key`` under a random token, renewing it while the body runs.

    If the holder dies the lock lapses after ``ttl_s``; waits up to ``wait_s`` for it.
    If renewal fails until the lock would lapse, the body is cancelled (``LockLost``):
    past that point another worker may take the thread. A body cancelled from outside
    does not release the lock at once, since a synchronous node may still be running
    in its thread; the lock lapses instead.
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

    body = asyncio.current_task()
    lost = False

    async def renew() -> None:
        nonlocal lost
        held_until = loop.time() + ttl_s
        while True:
            await asyncio.sleep(ttl_s / 3)
            try:
                if await r.eval(RENEW_LOCK, 1, key, token, ttl_ms):
                    held_until = loop.time() + ttl_s
                    continue
                reason = "taken over"
            except Exception:
                if loop.time() < held_until - 1:
                    log.warning("could not renew %s; retrying", key, exc_info=True)
                    continue
                reason = "unrenewable"
            lost = True
            log.error("lock %s %s; stopping the attempt", key, reason)
            if body is not None:
                body.cancel()
            return

    renewer = asyncio.create_task(renew())
    release = True
    try:
        yield
    except asyncio.CancelledError:
        release = False  # cancelled from outside: leave the lock to lapse
        if lost:
            raise LockLost(key) from None
        raise
    finally:
        renewer.cancel()
        await asyncio.gather(renewer, return_exceptions=True)
        if release:
            # compare-and-delete, shielded so a late cancel still frees the thread
            try:
                await asyncio.shield(r.eval(RELEASE_LOCK, 1, key, token))
            except Exception:
                # Redis is away: free the thread once it is back, not only at the lapse
                _release_later(r, key, token, ttl_s)
                raise


_releasing: set[asyncio.Task[None]] = set()


def _release_later(r: aioredis.Redis, key: str, token: str, ttl_s: int) -> None:
    async def retry() -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + ttl_s
        while loop.time() < end:
            await asyncio.sleep(1)
            with contextlib.suppress(Exception):
                await r.eval(RELEASE_LOCK, 1, key, token)
                return

    task = asyncio.ensure_future(retry())
    _releasing.add(task)
    task.add_done_callback(_releasing.discard)
