"""Queueing work for the workers, and waking an idle one at once."""

from __future__ import annotations

import logging

from arq.connections import ArqRedis
from arq.jobs import serialize_job

from broker.core.codec import now_ms
from broker.core.store import Store

log = logging.getLogger("broker.core.jobs")

# arq's enqueue (a job that exists, or whose result is still kept, is not queued again)
# and the wake-up, in one round trip instead of WATCH/EXISTS/MULTI/…/EXEC and a PUBLISH.
# KEYS: 1 job, 2 job's result, 3 queue, 4 wake channel; ARGV: 1 job id, 2 score (ms),
# 3 job ttl ms, 4 the job as arq serializes it, 5 "1" to wake the workers (the message
# names the job, so a worker starts it without reading the queue).
ENQUEUE = """
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then return 0 end
redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
if ARGV[5] == '1' then redis.call('PUBLISH', KEYS[4], ARGV[1]) end
return 1
"""


async def enqueue(queue: ArqRedis, store: Store, function: str, job_id: str, *args: object) -> bool:
    """Queues ``function(*args)`` as arq job ``job_id`` now, as ``ArqRedis.enqueue_job``
    does, and wakes the workers; False if that job is queued or recently finished."""
    k = store.keys
    ts = now_ms()
    job = serialize_job(function, args, {}, None, ts, serializer=queue.job_serializer)
    script = queue.register_script(ENQUEUE)
    keys = [k.arq_job_prefix + job_id, k.arq_result_prefix + job_id, k.queue, k.wake_channel]
    wake = "1" if store.settings.wake_workers else "0"
    return bool(await script(keys, [job_id, ts, queue.expires_extra_ms, job, wake]))


def advance_job_id(run_id: str, reason: str, where: tuple[str, str] | None = None) -> str:
    """The id of a job that moves a run forward: one per run and reason, so a reason
    queued twice runs once. ``where`` (thread id, agent id) rides along, so the worker
    takes the thread's lease without reading the run first; neither id can hold ``|``
    or ``/`` (broker/core/ids.py, agent/registry.py)."""
    job_id = f"advance:{run_id}:{reason}"
    return f"{job_id}|{where[0]}/{where[1]}" if where else job_id


def job_where(job_id: str) -> tuple[str, str] | None:
    """The (thread id, agent id) an advance job's id carries, if it carries them."""
    _, sep, tail = job_id.rpartition("|")
    thread_id, slash, agent_id = tail.partition("/")
    return (thread_id, agent_id) if sep and slash and thread_id and agent_id else None


async def enqueue_advance(
    queue: ArqRedis,
    store: Store,
    run_id: str,
    reason: str,
    where: tuple[str, str] | None = None,
) -> None:
    """Queues the job that moves a run forward (``where``: its thread and agent ids).

    A failure here loses nothing: the run is already in the due set, and the
    worker's reconciler queues overdue runs.
    """
    try:
        await enqueue(queue, store, "advance", advance_job_id(run_id, reason, where), run_id)
    except Exception:
        log.warning("could not queue run %s now; the reconciler will", run_id, exc_info=True)


async def abort_job(queue: ArqRedis, store: Store, job_id: str | None) -> None:
    """Asks the worker executing ``job_id`` to stop it at its next await (arq's abort set,
    under the broker's prefix: broker/core/arq_keys.py)."""
    if job_id:
        await queue.zadd(store.keys.arq_abort, {job_id: now_ms()})
