"""Handing on the runs of dead workers, without waiting for arq.

A running run whose thread lease has lapsed, or is held by a worker whose heartbeat is
stale (worker/liveness.py), gets a job with a fresh id at once. The dead worker's own arq
job stays in progress until arq's ``job_timeout`` passes; when it is delivered again it
finds the run already advanced (begin attempt is idempotent), so the run moves on once.

Freeing a dead holder's lease deletes only the lease, not its fence: if the holder was
alive after all (a long pause), it takes its lease again at its next renewal unless the
new job has taken the thread first, and then its writes are refused.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from broker.core.codec import now_ms
from broker.core.records import RunStatus
from broker.core.store import Store
from worker.liveness import Heartbeat
from worker.locks import holder_of

log = logging.getLogger("worker.handover")

# Deletes the lease only if it still holds the dead holder's token. KEYS: 1 lease; ARGV: 1 token.
FREE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


async def hand_on(store: Store, pool: Any, heartbeat: Heartbeat, *, batch: int = 500) -> int:
    """Queues a job for every running run no live holder is on; returns how many."""
    k = store.keys
    r = store.r
    running: list[str] = await r.zrange(k.runs_by_status(RunStatus.RUNNING.value), 0, batch - 1)
    if not running:
        return 0
    async with r.pipeline(transaction=False) as pipe:
        for run_id in running:
            pipe.hmget(k.run(run_id), ["thread_id", "job_id"])
        runs = await pipe.execute()
    held = [(run_id, t, j) for run_id, (t, j) in zip(running, runs, strict=True) if t]
    async with r.pipeline(transaction=False) as pipe:
        for _, thread_id, _ in held:
            pipe.get(k.thread_lease(thread_id))
            pipe.get(k.thread_fence(thread_id))
        replies = await pipe.execute()
    workers = dict(await r.zrange(k.workers, 0, -1, withscores=True))
    now = now_ms()
    period = max(int(store.settings.lease_ttl_s * 1000), 1)
    queued = 0
    for (run_id, thread_id, job_id), lease, fence in zip(
        held, replies[::2], replies[1::2], strict=True
    ):
        if lease is not None:
            holder = holder_of(lease)
            if not heartbeat.dead(workers.get(holder), now):
                continue
            if not await r.eval(FREE, 1, k.thread_lease(thread_id), lease):
                continue  # renewed or released meanwhile
            log.warning("worker %s is dead; handing on run %s", holder, run_id)
            basis = lease
        else:
            basis = fence or job_id or ""  # lapsed: its holder stopped renewing it
        # one job per lost lease and lease period: a second pass does not queue it again
        digest = hashlib.sha1(basis.encode()).hexdigest()[:12]
        job = await pool.enqueue_job(
            "advance", run_id, _job_id=f"advance:{run_id}:h{digest}{now // period}"
        )
        if job is not None:
            queued += 1
    if queued:
        await r.publish(k.wake_channel, "1")
        log.info("handed on %d runs", queued)
    return queued
