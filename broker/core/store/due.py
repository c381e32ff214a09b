"""The bookkeeping of work that falls due: runs the reconciler looks at again, and
deadlines of interrupts that no longer exist. None of it changes a run's or an
interrupt's state; the transitions do that."""

from __future__ import annotations

import redis.asyncio as aioredis

from broker.core.keys import Keys


class Due:
    r: aioredis.Redis
    keys: Keys

    async def drop_due(self, run_id: str) -> None:
        """Forgets a finished run in the due set (a late job found nothing to do)."""
        await self.r.zrem(self.keys.runs_due, run_id)

    async def drop_deadline(self, interrupt_id: str) -> None:
        """Forgets the deadline of an interrupt that no longer exists."""
        await self.r.zrem(self.keys.deadlines, interrupt_id)

    async def overdue_runs(self, cutoff: int, now: int, batch: int) -> list[tuple[str, str]]:
        """Runs due since before ``cutoff`` whose thread no worker holds, as (run id,
        thread id). Each run looked at moves to the back of the due set, so later passes
        reach the others."""
        k = self.keys
        due: list[str] = await self.r.zrangebyscore(k.runs_due, "-inf", cutoff, 0, batch)
        if not due:
            return []
        async with self.r.pipeline(transaction=False) as pipe:
            for run_id in due:
                pipe.hget(k.run(run_id), "thread_id")
            threads = await pipe.execute()
        async with self.r.pipeline(transaction=False) as pipe:
            for run_id, thread_id in zip(due, threads, strict=True):
                if thread_id is None:
                    pipe.zrem(k.runs_due, run_id)
                else:
                    pipe.zadd(k.runs_due, {run_id: now}, xx=True)
                    pipe.exists(k.thread_lease(thread_id))
            replies = iter(await pipe.execute())
        out = []
        for run_id, thread_id in zip(due, threads, strict=True):
            if thread_id is None:
                next(replies)
                continue
            next(replies)
            if not next(replies):  # no worker holds the thread (one that does is on it)
                out.append((run_id, thread_id))
        return out
