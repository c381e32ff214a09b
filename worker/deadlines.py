"""The expiry pass: interrupts whose deadline passed get their declared outcome.

One worker at a time runs it (a short Redis lock). Each due interrupt goes through the
channel contract's ``expire``: per its declaration, the run is queued to resume with
the default answer, or failed, or cancelled, in the same step as the expiry. An
interrupt with an escalation ladder is due at each of its steps; the steps before the
last run as their own transitions (broker/core/escalate.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from broker.core import escalate
from broker.core.codec import now_ms
from broker.core.store import Store
from worker import outages

log = logging.getLogger("worker.deadlines")

BATCH = 200


async def expire_due(store: Store, pool: Any, now: int | None = None) -> int:
    """Expires every interrupt due by ``now``, or runs its ladder step that is due;
    returns how many this pass changed."""
    now = now or now_ms()
    done = 0
    while True:
        due = await store.r.zrangebyscore(store.keys.deadlines, "-inf", now, 0, BATCH)
        for interrupt_id in due:
            if await escalate.run_due(store, pool, interrupt_id, now):
                done += 1
        if len(due) < BATCH:
            return done


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
        except Exception as exc:
            outages.report(log, "expiry pass failed", exc)
