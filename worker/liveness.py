"""The worker's heartbeat, and how it judges other workers dead.

Every worker ZADDs its id to ``keys.workers`` every ``worker_heartbeat_s``. A worker whose
heartbeat is older than ``DEAD_AFTER_BEATS`` of them is dead, and its leases are handed
on (worker/handover.py).

A stall of Redis stops every heartbeat at once: right after it, every worker looks dead.
So a worker judges others only on what it has watched itself: the staleness counts from
the later of their last heartbeat and the moment its own connection to Redis was last
found healthy again (a heartbeat that failed, took longer than a heartbeat interval, or
came late resets that moment). After a stall everyone gets a full ``dead_after`` to beat
again before anyone is judged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from broker.core.codec import now_ms
from broker.core.store import Store

log = logging.getLogger("worker.liveness")

DEAD_AFTER_BEATS = 3
PRUNE_AFTER_BEATS = 6


class Heartbeat:
    """This worker's heartbeat. It is written only while ``taking_jobs()`` says the poll
    loop runs and may start jobs: a draining worker, or one whose loop ended, takes its
    entry off at once, so readiness stops counting it (its leases lapse on their own)."""

    def __init__(
        self,
        store: Store,
        worker_id: str,
        *,
        taking_jobs: Callable[[], bool] = lambda: True,
        draining: Callable[[], bool] = lambda: False,
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        self.taking_jobs = taking_jobs
        self.draining = draining
        self.every_ms = int(store.settings.worker_heartbeat_s * 1000)
        self.dead_after_ms = DEAD_AFTER_BEATS * self.every_ms
        self.healthy_since: int | None = None
        self._last_ok: int | None = None

    async def beat(self) -> None:
        """One heartbeat; raises if Redis does not take it."""
        k = self.store.keys
        started = now_ms()
        try:
            async with self.store.r.pipeline(transaction=False) as pipe:
                if self.taking_jobs():
                    pipe.zadd(k.workers, {self.worker_id: started})
                else:
                    pipe.zrem(k.workers, self.worker_id)
                pipe.zremrangebyscore(
                    k.workers, "-inf", started - PRUNE_AFTER_BEATS * self.every_ms
                )
                await pipe.execute()
        except Exception:
            self.healthy_since = None
            raise
        done = now_ms()
        late = self._last_ok is not None and started - self._last_ok > 2 * self.every_ms
        if self.healthy_since is None or late or done - started > self.every_ms:
            self.healthy_since = done
        self._last_ok = done

    async def loop(self) -> None:
        while True:
            await asyncio.sleep(1.0 if self.draining() else self.every_ms / 1000)
            try:
                await self.beat()
            except Exception:
                log.warning("heartbeat failed", exc_info=True)

    def healthy_for_ms(self, now: int | None = None) -> int:
        """How long this worker has seen Redis answer without a gap (0: not now)."""
        if self.healthy_since is None:
            return 0
        return (now or now_ms()) - self.healthy_since

    def dead(self, last_beat_ms: float | None, now: int | None = None) -> bool:
        """Whether a worker whose last heartbeat is ``last_beat_ms`` is dead. A worker with
        no heartbeat left (stopped, or pruned long ago) is not judged here: its leases
        lapse on their own."""
        if last_beat_ms is None or self.healthy_since is None:
            return False
        now = now or now_ms()
        return now - max(int(last_beat_ms), self.healthy_since) > self.dead_after_ms
