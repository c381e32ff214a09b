"""The per-thread lease: the graph never runs twice at once on one thread.

A lease is a short-lived key holding its holder's token, ``<worker id>|<nonce>``, renewed
every third of its life while the attempt runs. Taking it also writes the token to the
thread's fence key, which every write of the attempt checks (broker/core/fence.py).

After a stall (Redis or the holder paused longer than the lease lives) the holder finds
its lease gone. If the fence still names it, nobody else took the thread meanwhile: it
takes the lease again under the same token and goes on. Only a different token in the
fence is a takeover; then the holder stops, and its writes are refused anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from broker.core.fence import Fence

# Longest a holder may be paused and still take its lapsed lease again.
FENCE_TTL_MS = 24 * 3600 * 1000

# KEYS: 1 lease, 2 fence; ARGV: 1 token, 2 lease ttl ms, 3 fence ttl ms.
ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
  return 1
end
return 0
"""

# 1: held and extended; 2: it had lapsed and nobody took it, so it is taken again under
# the same token; 0: another holder took the thread. KEYS, ARGV: as ACQUIRE.
RENEW = """
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  return 1
end
if not held and redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  return 2
end
return 0
"""

# Compare-and-delete of the lease and the fence. While the lease names the holder, so
# does the fence (only a taker of the lease writes it). KEYS: as ACQUIRE; ARGV: 1 token.
RELEASE = """
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then return redis.call('DEL', KEYS[1], KEYS[2]) end
if not held and redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 0
"""

log = logging.getLogger("worker.locks")


class LockBusy(Exception):
    """Another worker holds the thread; the job should retry later."""


class LockLost(Exception):
    """Another holder took the thread, or the lease could not be renewed in time; the
    attempt was stopped."""


def holder_of(token: str) -> str:
    """The worker id in a lease token."""
    return token.rpartition("|")[0]


class Lease:
    """One holder's lease on one thread (``lease_key``, with its ``fence_key``)."""

    def __init__(
        self, r: aioredis.Redis, lease_key: str, fence_key: str, *, holder: str, ttl_s: float
    ) -> None:
        self.r = r
        # EVALSHA, with the script sent again only if the server lacks it (NOSCRIPT)
        self._acquire = r.register_script(ACQUIRE)
        self._renew = r.register_script(RENEW)
        self._release = r.register_script(RELEASE)
        self.keys = [lease_key, fence_key]
        self.token = f"{holder}|{secrets.token_hex(8)}"
        self.ttl_s = ttl_s
        self.ttl_ms = max(int(ttl_s * 1000), 1)

    @property
    def fence(self) -> Fence:
        return Fence(self.keys[1], self.token)

    async def acquire(self) -> bool:
        return bool(await self._acquire(*self.acquire_call()[1:]))

    def acquire_call(self) -> tuple[AsyncScript, list[str], list[Any]]:
        """Taking the lease as a script call (script, keys, arguments), for a caller that
        sends it together with what it reads next (broker/core/saver/_leased.py)."""
        return self._acquire, self.keys, [self.token, self.ttl_ms, FENCE_TTL_MS]

    async def renew(self) -> Literal["held", "retaken", "lost"]:
        got = await self._renew(self.keys, [self.token, self.ttl_ms, FENCE_TTL_MS])
        return {1: "held", 2: "retaken"}.get(int(got), "lost")  # type: ignore[return-value]

    async def release(self) -> None:
        await self._release(self.keys, [self.token])


@contextlib.asynccontextmanager
async def hold(
    lease: Lease, *, wait_s: float, acquire: Callable[[], Awaitable[bool]] | None = None
) -> AsyncIterator[Lease]:
    """Holds ``lease``, renewing it while the body runs (``acquire``: how to take it, if
    not ``lease.acquire``).

    Waits up to ``wait_s`` for the thread (``LockBusy``). If the holder dies the lease
    lapses after its ttl, or is handed on sooner once the holder's heartbeat is stale
    (worker/handover.py). The body is cancelled (``LockLost``) when another holder has
    taken the thread, or when renewal keeps failing until the lease would lapse. A body
    cancelled from outside does not release the lease at once, since a synchronous node
    may still be running in its thread; the lease lapses instead.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    delay = 0.005
    take = acquire or lease.acquire
    while not await take():
        if loop.time() >= deadline:
            raise LockBusy(lease.keys[0])
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.2)

    body = asyncio.current_task()
    lost = False

    async def renew() -> None:
        nonlocal lost
        held_until = loop.time() + lease.ttl_s
        while True:
            await asyncio.sleep(lease.ttl_s / 3)
            outcome: str
            try:
                outcome = await lease.renew()
            except Exception:
                if loop.time() < held_until - min(1.0, lease.ttl_s / 3):
                    log.warning("could not renew %s; retrying", lease.keys[0], exc_info=True)
                    continue
                outcome = "unrenewable"
            if outcome in ("held", "retaken"):
                if outcome == "retaken":
                    log.warning("lease %s had lapsed; taken again", lease.keys[0])
                held_until = loop.time() + lease.ttl_s
                continue
            lost = True
            log.error("lease %s %s; stopping the attempt", lease.keys[0], outcome)
            if body is not None:
                body.cancel()
            return

    renewer = asyncio.create_task(renew())
    release = True
    try:
        yield lease
    except asyncio.CancelledError:
        release = False  # cancelled from outside: leave the lease to lapse
        if lost:
            raise LockLost(lease.keys[0]) from None
        raise
    finally:
        renewer.cancel()
        await asyncio.gather(renewer, return_exceptions=True)
        if release:
            # compare-and-delete, shielded so a late cancel still frees the thread
            try:
                await asyncio.shield(lease.release())
            except Exception:
                # Redis is away: free the thread once it is back, not only at the lapse
                _release_later(lease)
                raise


_releasing: set[asyncio.Task[None]] = set()


def _release_later(lease: Lease) -> None:
    async def retry() -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + lease.ttl_s
        while loop.time() < end:
            await asyncio.sleep(1)
            with contextlib.suppress(Exception):
                await lease.release()
                return

    task = asyncio.ensure_future(retry())
    _releasing.add(task)
    task.add_done_callback(_releasing.discard)
