"""Retention: ended runs expire with everything they own, and nothing points at them.

The step that ends a run gives its records (the run, its interrupts, their audit logs,
its event stream) a TTL of ``BROKER_RETENTION_S`` and leaves tombstones that outlive them
by ``BROKER_TOMBSTONE_S`` (see ``retain`` in the prelude). These calls are the rest: the
sweep drops the index entries of runs whose records are due to have expired, and the
backfill gives the same retention to runs that ended before it applied. Pending work
(queued, running and interrupted runs, and their interrupts) never gets a TTL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

from broker.core.codec import dumps
from broker.core.keys import Keys
from broker.core.records import RunStatus
from broker.core.settings import Settings

ENDED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class Retention:
    r: aioredis.Redis
    keys: Keys
    settings: Settings

    if TYPE_CHECKING:  # provided by Transitions

        async def _call(self, name: str, args: list[Any], keys: list[str] | None = None) -> Any: ...

    async def sweep_expired(self, batch: int = 200) -> int:
        """Forgets up to ``batch`` runs whose records are due to have expired: their
        index entries go, their tombstones stay. Returns how many."""
        return int(await self._call("sweep", [batch]))

    async def backfill(self, status: RunStatus, after: int, batch: int = 200) -> tuple[int, int]:
        """Retains the runs of an ended ``status`` after seq ``after`` that have no TTL
        yet; returns (seq to continue after, 0 at the end of the index; how many)."""
        last, done = await self._call("backfill", [status.value, after, batch])
        return (int(float(last)) if last else 0), int(done)

    async def backfill_step(self, batch: int = 200) -> int:
        """One bounded step of the backfill over every ended status, resuming where the
        previous step stopped (a cursor per status in Redis); returns runs retained."""
        k = self.keys
        cursors = await self.r.hgetall(k.retention_scan)
        total = 0
        for status in ENDED:
            after = int(cursors.get(status.value) or 0)
            nxt, done = await self.backfill(status, after, batch)
            total += done
            if nxt:
                await self.r.hset(k.retention_scan, status.value, nxt)
            else:
                await self.r.hdel(k.retention_scan, status.value)
        return total

    async def append_audit(self, interrupt_id: str, item: dict[str, Any]) -> bool:
        """Appends a refused attempt to the interrupt's audit log, which expires with the
        interrupt; False when the interrupt no longer exists."""
        return bool(await self._call("audit", [interrupt_id, dumps(item)]))
