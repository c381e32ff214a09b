"""The reconciler: queues a job for every run whose work is overdue and whose thread
no worker holds, and hands on the runs of dead workers (worker/handover.py).

This is what makes an accepted answer resume even if the API died between recording it
and queueing its job, or a job was lost. One worker at a time runs a pass (a short
Redis lock), and only once it has seen Redis answer for a whole lease ttl: right after
a stall of Redis, holders get the time to take their lapsed leases again first. A run
whose thread has no lease is queued only if a second look finds it still without one
(worker/handover.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from broker.core.codec import now_ms
from broker.core.store import Store
from worker import handover, outages
from worker.liveness import Heartbeat

log = logging.getLogger("worker.reconciler")


async def loop(store: Store, pool: Any, heartbeat: Heartbeat) -> None:
    """Runs a pass every ``reconcile_interval_s`` on whichever worker holds the lock."""
    s = store.settings
    k = store.keys
    while True:
        await asyncio.sleep(s.reconcile_interval_s)
        try:
            if heartbeat.healthy_for_ms() < s.lease_ttl_s * 1000:
                continue
            if not await store.r.set(
                k.reconciler_lock,
                heartbeat.worker_id,
                nx=True,
                # a pass, its two waits between looks included
                px=int((s.reconcile_interval_s + 2 * handover.SECOND_LOOK * s.lease_ttl_s) * 1000),
            ):
                continue
            await handover.hand_on(store, pool, heartbeat)
            await reconcile_once(store, pool)
        except Exception as exc:
            outages.report(log, "reconciler pass failed", exc)


async def reconcile_once(store: Store, pool: Any, *, batch: int = 500) -> int:
    """Queues a job for each overdue run that no worker holds; returns how many.

    Each run looked at moves to the back of the due set (its score becomes now), so a
    pass always reaches runs it has not seen lately, however many stay due for long.
    """
    s = store.settings
    k = store.keys
    now = now_ms()
    cutoff = now - int(s.reconcile_grace_s * 1000)
    queued = 0
    bucket = cutoff // max(int(s.reconcile_grace_s * 1000), 1)
    found = await store.overdue_runs(cutoff, now, batch)
    if found:
        await handover.between_looks(store)
    free = await handover.still_lapsed(store.r, k, [t for _, t in found])
    for run_id in (run_id for run_id, thread_id in found if thread_id in free):
        job = await pool.enqueue_job("advance", run_id, _job_id=f"advance:{run_id}:rc{bucket}")
        if job is not None:
            queued += 1
    if queued:
        await store.r.publish(k.wake_channel, "1")
        log.info("reconciler queued %d overdue runs", queued)
    return queued
