"""The thread's latest checkpoint read in the same round trip as the lease is taken.

An attempt takes its thread's lease, then reads where the thread stands. Sent together
on one connection, the server runs the two in order: once the lease is taken, no other
holder can write the thread (its fence refuses them), so the read that follows it sees
what the attempt starts from. When the lease is not taken, the read is thrown away.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from broker.core.saver._codec import _page_reply, _target

# A script to run first: the script, its keys, its arguments.
First = tuple[AsyncScript, Sequence[Any], Sequence[Any]]


class LeasedRead:
    """Mixed into ``RedisCheckpointSaver``; relies on its client and read script."""

    redis: aioredis.Redis
    _read: AsyncScript

    if TYPE_CHECKING:

        def _page_call(
            self, thread_id: str, ns: str, below: str | None, count: int, ids: Sequence[str] = ()
        ) -> tuple[list[str], list[Any]]: ...

        def _tuple(
            self,
            thread_id: str,
            ns: str,
            cid: str,
            row: bytes,
            writes: list[bytes],
            values: dict[bytes, bytes | None],
            filter: dict[str, Any] | None,
        ) -> CheckpointTuple | None: ...

    async def aget_tuple_after(
        self, config: RunnableConfig, first: First
    ) -> tuple[Any, CheckpointTuple | None]:
        """``first``'s reply, and the checkpoint ``config`` names (or the latest), read
        right after it on the same connection: one round trip."""
        thread_id, ns, cid = _target(config)
        keys, args = self._page_call(thread_id, ns, None, 1, [cid] if cid else ())
        script, first_keys, first_args = first
        for _ in range(2):
            # EVALSHA by hand: a registered script in a pipeline sends SCRIPT EXISTS first
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.evalsha(script.sha, len(first_keys), *first_keys, *first_args)
                pipe.evalsha(self._read.sha, len(keys), *keys, *args)
                replies = await pipe.execute(raise_on_error=False)
            if any(isinstance(r, NoScriptError) for r in replies):
                # a server that restarted or failed over has an empty script cache
                await self.redis.script_load(script.script)
                await self.redis.script_load(self._read.script)
                continue
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            got, read = replies
            _, _, found, values = _page_reply(ns, read)
            for found_id, row, writes in found:
                return got, self._tuple(thread_id, ns, found_id, row, writes, values, None)
            return got, None
        raise NoScriptError("Redis would not keep the lease and read scripts loaded")
