"""The retention sweep: what expired runs leave behind goes, and old runs get retention.

The step that ends a run gives its records a TTL (broker/core/store/retention.py); this
pass, on one worker at a time (a short Redis lock, as the reconciler's), drops the index
entries of runs whose records are due to have expired, then backfills: runs that ended
before retention applied, found by a cursor over the ended-status indexes, get the same
TTL. Every pass does a bounded amount of work.
"""

from __future__ import annotations

import asyncio
import logging

from broker.core.codec import now_ms
from broker.core.store import Store

log = logging.getLogger("worker.retention")

BATCH = 200
MAX_BATCHES = 10


async def sweep_once(store: Store, *, batch: int = BATCH, max_batches: int = MAX_BATCHES) -> int:
    """One bounded pass: forgets expired runs, then retains old ended runs that have no
    TTL; returns how many runs it forgot or retained."""
    done = 0
    for _ in range(max_batches):
        n = await store.sweep_expired(batch)
        done += n
        if n < batch:
            break
    if store.settings.retention_s:
        done += await store.backfill_step(batch)
    # the checkpoint saver's thread registry holds each thread's expiry: drop the passed
    await store.r.zremrangebyscore(store.keys.checkpoint_threads, "-inf", now_ms())
    await store.forget_expired_threads()
    return done


async def loop(store: Store, worker_id: str) -> None:
    """Runs a pass every ``retention_sweep_interval_s`` on whichever worker holds the lock."""
    every = store.settings.retention_sweep_interval_s
    while True:
        await asyncio.sleep(every)
        try:
            if await store.r.set(
                store.keys.retention_lock, worker_id, nx=True, px=max(int(every * 1000), 100)
            ):
                if done := await sweep_once(store):
                    log.info("retention pass: %d runs forgotten or retained", done)
        except Exception:
            log.exception("retention pass failed")
