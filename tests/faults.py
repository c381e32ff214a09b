"""Faults injected at the connection layer: a Redis client whose connections drop a
command before it reaches the server, or lose the reply after the server ran it.

The code under test keeps its real collaborators; only the wire fails, as it does when
a process dies or the network drops mid-call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError

Match = Callable[[tuple[Any, ...]], bool]


@dataclass
class Faults:
    """Armed rules; each fires on the commands it matches, ``times`` times (None: always)."""

    before: list[list[Any]] = field(default_factory=list)
    after: list[list[Any]] = field(default_factory=list)
    seen: list[tuple[Any, ...]] = field(default_factory=list)

    def drop(self, match: Match, times: int | None = 1) -> None:
        """The matching command never reaches the server."""
        self.before.append([match, times])

    def lose_reply(self, match: Match, times: int | None = 1) -> None:
        """The server runs the matching command; its reply never arrives."""
        self.after.append([match, times])

    def clear(self) -> None:
        self.before.clear()
        self.after.clear()

    @staticmethod
    def _fire(rules: list[list[Any]], args: tuple[Any, ...]) -> bool:
        for rule in rules:
            match, times = rule
            if (times is None or times > 0) and match(args):
                if times is not None:
                    rule[1] = times - 1
                return True
        return False


def evalsha_of(script: Any) -> Match:
    """Matches calls of one registered script (a redis-py ``Script``)."""
    return lambda args: args[:2] == ("EVALSHA", script.sha)


def every_command(args: tuple[Any, ...]) -> bool:
    return True


def client(
    url: str, faults: Faults, cls: type[aioredis.Redis] = aioredis.Redis, **kwargs: Any
) -> Any:
    """A client (of ``cls``, e.g. arq's ``ArqRedis``) whose every connection obeys ``faults``."""

    class FaultyConnection(Connection):
        async def send_command(self, *args: Any, **kw: Any) -> None:
            faults.seen.append(args)
            if Faults._fire(faults.before, args):
                await self.disconnect()
                raise RedisConnectionError(f"injected: {args[0]} dropped")
            await super().send_command(*args, **kw)
            if any(match(args) for match, times in faults.after if times is None or times > 0):
                # the server ran it (an error reply, such as NOSCRIPT, passes as it is)
                await super().read_response()
                Faults._fire(faults.after, args)
                await self.disconnect()
                raise RedisConnectionError(f"injected: reply to {args[0]} lost")

    pool = aioredis.ConnectionPool.from_url(url, connection_class=FaultyConnection, **kwargs)
    return cls.from_pool(pool)  # the client owns the pool: closing it closes them
