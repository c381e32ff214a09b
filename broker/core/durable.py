"""Writes that survive a failover: each change a caller is told about is on replicas first.

Redis replicates asynchronously, so a primary that fails (or is demoted by Sentinel)
can take its last writes with it. A write the broker acknowledges (a 2xx, an event a
client reads as final) is therefore followed, on the same connection, by
``WAIT <replicas> <timeout>``: Redis answers how many replicas hold everything that
connection wrote. Fewer than ``BROKER_REDIS_MIN_REPLICAS`` in
``BROKER_REDIS_WAIT_TIMEOUT_MS`` raises ``RedisUnavailable`` (503 ``redis_unavailable``):
the change may or may not survive, and a retry with the same ``Idempotency-Key`` is safe.

WAIT counts what *this connection* wrote, so the write and its WAIT go out in one
pipeline (one connection, one round trip). Replication is one ordered stream, so a
replica that has a connection's last write also has every write any connection made
before it (the checkpoints a worker saved before it recorded the interrupt, say).
"""

from __future__ import annotations

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


def min_replicas(settings: Settings) -> int:
    """Replicas that must confirm a write: the setting, or 1 under Sentinel, 0 otherwise."""
    if settings.redis_min_replicas is not None:
        return settings.redis_min_replicas
    url = (settings.redis_url or "").lower()
    return 1 if url.split("://", 1)[0] in SENTINEL_SCHEMES else 0


class Durability:
    """How one store's writes wait for replicas (nothing to wait for when ``replicas`` is 0)."""

    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self.r = redis
        self.replicas = min_replicas(settings)
        self.timeout_ms = settings.redis_wait_timeout_ms

    async def script(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Runs ``script`` and, when replicas are required, WAITs for them on its connection."""
        if not self.replicas:
            return await script(keys=list(keys), args=list(args))
        for _ in range(2):
            async with self.r.pipeline(transaction=False) as pipe:
                pipe.evalsha(script.sha, len(keys), *keys, *args)
                self._wait(pipe)
                res, acked = await pipe.execute(raise_on_error=False)
            if isinstance(res, NoScriptError):
                # a new primary after a failover has an empty script cache
                await self.r.script_load(script.script)
                continue
            self._check(res, acked)
            return res
        raise errors.RedisUnavailable("Redis refused to load the broker's scripts; retry")

    async def commands(self, build: Callable[[Pipeline], Any]) -> list[Any]:
        """Runs the commands ``build`` queues on a pipeline, then WAITs; their replies."""
        async with self.r.pipeline(transaction=False) as pipe:
            build(pipe)
            if self.replicas:
                self._wait(pipe)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        if self.replicas:
            *replies, acked = replies
            for reply in replies:
                self._check(reply, acked)
        else:
            for reply in replies:
                self._check(reply, self.replicas)
        return replies

    def _wait(self, pipe: Pipeline) -> None:
        pipe.execute_command("WAIT", self.replicas, self.timeout_ms)

    def _check(self, reply: Any, acked: Any) -> None:
        if isinstance(reply, Exception):
            if "NOREPLICAS" in str(reply):
                # min-replicas-to-write refused it: an isolated or demoted primary
                note_demoted(self.r)
                raise errors.RedisUnavailable(
                    "Redis refused the write: its primary has too few replicas "
                    "(min-replicas-to-write); nothing was changed, retry shortly"
                ) from reply
            raise reply
        if isinstance(acked, Exception):
            raise acked
        if int(acked) < self.replicas:
            note_demoted(self.r)
            raise errors.RedisUnavailable(
                f"Redis did not confirm the change on {self.replicas} replica(s) within "
                f"{self.timeout_ms} ms (a failover may be under way): it may or may not "
                "have been kept. Retry with the same Idempotency-Key; a retry never "
                "applies it twice."
            )
