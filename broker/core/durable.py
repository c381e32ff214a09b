"""Writes that survive a failover: each change a caller is told about is on replicas first.

Redis replicates asynchronously, so a primary that fails (or is demoted by Sentinel)
can take its last writes with it. A write the broker acknowledges (a 2xx, an event a
client reads as final) is therefore followed, on the same connection, by
``WAIT <replicas> <timeout>``: Redis answers how many replicas hold everything that
connection wrote. Fewer than needed (below) in
``BROKER_REDIS_WAIT_TIMEOUT_MS`` raises ``RedisUnavailable`` (503 ``redis_unavailable``):
the change may or may not survive, and a retry with the same ``Idempotency-Key`` is safe.

WAIT counts what *this connection* wrote, so the write and its WAIT go out in one
pipeline (one connection, one round trip). Replication is one ordered stream, so a
replica that has a connection's last write also has every write any connection made
before it (the checkpoints a worker saved before it recorded the interrupt, say).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from broker.core import errors
from broker.core.connections import SENTINEL_SCHEMES
from broker.core.primary import note_demoted
from broker.core.settings import Settings

SAMPLE_EVERY_S = 1.0


def min_replicas(settings: Settings) -> int:
    """Replicas that must confirm a write: the setting, or 1 under Sentinel, 0 otherwise."""
    if settings.redis_min_replicas is not None:
        return settings.redis_min_replicas
    url = (settings.redis_url or "").lower()
    return 1 if url.split("://", 1)[0] in SENTINEL_SCHEMES else 0


class Durability:
    """How one store's writes wait for replicas (nothing to wait for when the floor is 0).

    Each write waits for every replica the primary had online within the last
    ``BROKER_REDIS_REPLICA_MEMORY_S`` (sampled with ``INFO replication`` on the write's
    own connection, at most once a second; forgotten when the primary changes, as its
    replication id tells), and never fewer than ``BROKER_REDIS_MIN_REPLICAS``. Waiting
    for all of them is what makes a graceful failover safe: once Sentinel promotes one
    replica, the old primary still has the others for a moment, and a write only they
    confirmed would be lost when they resync from the new one; that write now gets too
    few confirmations, and a 503.
    """

    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self.r = redis
        self.floor = min_replicas(settings)
        self.timeout_ms = settings.redis_wait_timeout_ms
        self.memory_s = settings.redis_replica_memory_s
        self._seen: deque[tuple[float, int]] = deque()
        self._sampled_at = -SAMPLE_EVERY_S
        self._replid: str | None = None

    @property
    def replicas(self) -> int:
        """Replicas the next write waits for."""
        if not self.floor:
            return 0
        cutoff = time.monotonic() - self.memory_s
        while self._seen and self._seen[0][0] < cutoff:
            self._seen.popleft()
        return max([self.floor, *(n for _, n in self._seen)])

    async def script(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Runs ``script`` and, when replicas are required, WAITs for them on its connection."""
        if not self.floor:
            return await script(keys=list(keys), args=list(args))
        for _ in range(2):
            [res] = await self._run(lambda pipe: pipe.evalsha(script.sha, len(keys), *keys, *args))
            if isinstance(res, NoScriptError):
                # a new primary after a failover has an empty script cache
                await self.r.script_load(script.script)
                continue
            if isinstance(res, Exception):
                raise res
            return res
        raise errors.RedisUnavailable("Redis refused to load the broker's scripts; retry")

    async def commands(self, build: Callable[[Pipeline], Any]) -> list[Any]:
        """Runs the commands ``build`` queues on a pipeline, then WAITs; their replies."""
        replies = await self._run(build)
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    async def _run(self, build: Callable[[Pipeline], Any]) -> list[Any]:
        needed = self.replicas
        sample = bool(self.floor) and time.monotonic() - self._sampled_at >= SAMPLE_EVERY_S
        async with self.r.pipeline(transaction=False) as pipe:
            build(pipe)
            queued = len(pipe)
            if needed:
                pipe.execute_command("WAIT", needed, self.timeout_ms)
            if sample:
                pipe.info("replication")
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        if sample and isinstance(replies[-1], dict):
            info = replies[-1]
            if info.get("master_replid") != self._replid:
                # another primary (a failover, a restart): what the old one had is moot
                self._seen.clear()
                self._replid = info.get("master_replid")
            self._sampled_at = time.monotonic()
            self._seen.append((self._sampled_at, _online(info)))
        if needed:
            acked = replies[queued]
            if isinstance(acked, Exception):
                raise acked
            if int(acked) < needed:
                note_demoted(self.r)
                raise errors.RedisUnavailable(
                    f"Redis did not confirm the change on {needed} replica(s) within "
                    f"{self.timeout_ms} ms (a failover may be under way): it may or may not "
                    "have been kept. Retry with the same Idempotency-Key; a retry never "
                    "applies it twice."
                )
        return replies[:queued]


def _online(info: dict[str, Any]) -> int:
    """Replicas of a primary that are streaming (not still syncing); 0 on a replica."""
    if info.get("role") != "master":
        return 0
    return sum(
        1
        for name, value in info.items()
        if name.startswith("slave") and isinstance(value, dict) and value.get("state") == "online"
    )
