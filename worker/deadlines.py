"""The expiry pass: interrupts whose deadline passed get their declared outcome.

One worker at a time runs it (a short Redis lock). Each due interrupt is expired by the
EXPIRE script; then, per its declaration, the run is queued to resume with the default
answer, or failed, or cancelled.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from arq.constants import abort_jobs_ss

from broker.core import errors, expiry
from broker.core.codec import now_ms
from broker.core.jobs import enqueue_advance
from broker.core.store import Store

log = logging.getLogger("worker.deadlines")

BATCH = 200


async def expire_due(store: Store, pool: Any, now: int | None = None) -> int:
    """Expires every interrupt due by ``now``; returns how many this pass expired."""
    now = now or now_ms()
    done = 0
    while True:
        due = await store.r.zrangebyscore(store.keys.deadlines, "-inf", now, 0, BATCH)
        for interrupt_id in due:
            if await expire_one(store, pool, interrupt_id, now):
                done += 1
        if len(due) < BATCH:
            return done


async def expire_one(store: Store, pool: Any, interrupt_id: str, now: int) -> bool:
    outcome, on_expire = await expiry.expire(store, interrupt_id, now)
    if outcome != "ok":
        return False
    run_id = (await store.interrupt_hash(interrupt_id))["run_id"]
    log.info("interrupt %s expired: %s", interrupt_id, on_expire)
    if on_expire == "resume":
        await enqueue_advance(pool, store, run_id, f"expiry:{interrupt_id}")
        return True
    try:
        if on_expire == "cancel":
            await store.cancel_run(run_id)
        else:
            message = f"interrupt {interrupt_id} expired without an answer"
            await store.stop_run(run_id, "failed", error={"message": message})
    except errors.RunFinished:
        return True
    job_id = (await store.run_hash(run_id)).get("job_id")
    if job_id:
        # a worker executing the run stops it at its next await
        await pool.zadd(abort_jobs_ss, {job_id: now_ms()})
    return True


async def loop(store: Store, pool: Any, worker_id: str) -> None:
    """Runs the expiry pass every ``expiry_interval_s`` on whichever worker holds the lock."""
    every = store.settings.expiry_interval_s
    while True:
        await asyncio.sleep(every)
        try:
            if await store.r.set(
                store.keys.expiry_lock, worker_id, nx=True, px=max(int(every * 1000), 100)
            ):
                await expire_due(store, pool)
        except Exception:
            log.exception("expiry pass failed")
