"""Checkpoint writes that ride out a short outage of Redis instead of failing the step.

A node runs before its writes are saved. When the save fails because Redis is briefly
unavailable (a failover under way, a primary that does not yet have the replicas it
needs, a WAIT that timed out), failing the attempt would run the node again on the
retry, and again for every retry that meets the same outage. The write is retried
instead, with backoff, for up to ``ride_out_s``: both write scripts are idempotent (the
same checkpoint id and the same task writes give the same hash fields), and each checks
the caller's fence, so a holder that lost the thread meanwhile is refused (``Fenced``)
rather than let through. Anything but an outage is raised at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.commands.core import AsyncScript

from broker.core import errors
from broker.core.durable import Durability

T = TypeVar("T")

FIRST_DELAY_S = 0.05
MAX_DELAY_S = 1.0


async def ride_out(call: Callable[[], Awaitable[T]], within_s: float) -> T:
    """``call()``, tried again on an outage of Redis until ``within_s`` have passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    delay = FIRST_DELAY_S
    while True:
        try:
            return await call()
        except Exception as exc:
            if errors.unavailable(exc) is None or loop.time() + delay > deadline:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_DELAY_S)


class RiddenWrites:
    """Mixed into ``RedisCheckpointSaver``: how its write scripts are called."""

    durable: Durability | None
    ride_out_s: float

    async def _call(self, script: AsyncScript, keys: list[Any], args: list[Any]) -> Any:
        durable = self.durable

        async def once() -> Any:
            if durable is not None:
                return await durable.script(script, keys, args)
            return await script(keys=keys, args=args)

        return await ride_out(once, self.ride_out_s)
