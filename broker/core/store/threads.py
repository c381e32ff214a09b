"""Threads made before any run (broker/core/store/_lua_threads.py): made in one atomic
step that also indexes them, durable like every other transition. A record lives as long
as a thread's checkpoints (``BROKER_CHECKPOINT_TTL_S``; 0 keeps both for good)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

from broker.core.codec import dumps, now_ms
from broker.core.keys import Keys
from broker.core.settings import Settings


class Threads:
    r: aioredis.Redis
    keys: Keys
    settings: Settings

    if TYPE_CHECKING:  # provided by Transitions

        async def _call(self, name: str, args: list[Any], keys: list[str] | None = None) -> Any: ...

    async def make_thread(
        self, thread_id: str, metadata: dict[str, Any], graph_id: str | None
    ) -> int | None:
        """Makes the thread's record; its creation time in ms, or None when the thread
        already exists (a record of its own, or runs)."""
        fields = {"metadata": dumps(metadata)}
        if graph_id:
            fields["graph_id"] = graph_id
        ttl = self.settings.checkpoint_ttl_s
        made = await self._call("make_thread", [thread_id, dumps(fields), ttl * 1000 or ""])
        return int(made) or None

    async def forget_expired_threads(self) -> int:
        """Drops the index entries of made threads whose records have expired."""
        ttl = self.settings.checkpoint_ttl_s
        if not ttl:
            return 0
        cutoff = now_ms() - ttl * 1000
        return int(await self.r.zremrangebyscore(self.keys.thread_records, "-inf", cutoff))
