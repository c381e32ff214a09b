"""Queueing work for the workers, and waking an idle one at once."""

from __future__ import annotations

import logging

from arq.connections import ArqRedis

from broker.core.codec import now_ms
from broker.core.store import Store

log = logging.getLogger("broker.core.jobs")


async def enqueue_advance(queue: ArqRedis, store: Store, run_id: str, reason: str) -> None:
    """Queues the job that moves a run forward.

    A failure here loses nothing: the run is already in the due set, and the
    worker's reconciler queues overdue runs.
    """
    try:
        await queue.enqueue_job(
            "advance", run_id, _job_id=f"advance:{run_id}:{reason}", _queue_name=store.keys.queue
        )
        if store.settings.wake_workers:
            await store.r.publish(store.keys.wake_channel, "1")
    except Exception:
        log.warning("could not queue run %s now; the reconciler will", run_id, exc_info=True)


async def abort_job(queue: ArqRedis, store: Store, job_id: str | None) -> None:
    """Asks the worker executing ``job_id`` to stop it at its next await (arq's abort set,
    under the broker's prefix: broker/core/arq_keys.py)."""
    if job_id:
        await queue.zadd(store.keys.arq_abort, {job_id: now_ms()})
