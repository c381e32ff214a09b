"""Queueing work for the workers, and waking an idle one at once."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from arq.connections import ArqRedis
from arq.jobs import serialize_job

from broker.core import telemetry
from broker.core.codec import now_ms
from broker.core.store import Store
from broker.core.store._prelude import QUEUE_JOB

log = logging.getLogger("broker.core.jobs")

# arq's enqueue and the wake-up in one round trip, instead of WATCH/EXISTS/MULTI/…/EXEC
# and a PUBLISH (``queue_job`` in broker/core/store/_prelude.py). The wake-up names the
# job, so a worker starts it without reading the queue. KEYS: 1 job, 2 job's result,
# 3 queue, 4 wake channel; ARGV: 1 job id, 2 score (ms), 3 job ttl ms, 4 the job as arq
# serializes it, 5 "1" to wake the workers.
ENQUEUE = (
    QUEUE_JOB
    + "return queue_job(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[4], ARGV[3],"
    + " ARGV[2], ARGV[5])"
)


@dataclass(frozen=True)
class Job:
    """An arq job ready to queue: its keys (job, result, queue, wake channel) and its
    arguments (id, the job as arq serializes it, ttl ms, "1" to wake)."""

    keys: list[str]
    job_id: str
    payload: bytes
    ttl_ms: int
    wake: str


def job(queue: ArqRedis, store: Store, function: str, job_id: str, *args: object) -> Job:
    """``function(*args)`` as arq job ``job_id``, as ``ArqRedis.enqueue_job`` writes it;
    while tracing is on, with the trace context in its kwargs (``trace``)."""
    k = store.keys
    carrier = telemetry.queued(function, job_id)
    kwargs = {"trace": carrier} if carrier else {}
    payload = serialize_job(function, args, kwargs, None, now_ms(), serializer=queue.job_serializer)
    keys = [k.arq_job_prefix + job_id, k.arq_result_prefix + job_id, k.queue, k.wake_channel]
    wake = "1" if store.settings.wake_workers else "0"
    return Job(keys, job_id, payload, queue.expires_extra_ms, wake)


def advance(
    queue: ArqRedis, store: Store, run_id: str, reason: str, where: tuple[str, str] | None
) -> Job:
    """The job that moves a run forward, for a transition to queue in its own step."""
    return job(queue, store, "advance", advance_job_id(run_id, reason, where), run_id)


async def enqueue(queue: ArqRedis, store: Store, function: str, job_id: str, *args: object) -> bool:
    """Queues ``function(*args)`` as arq job ``job_id`` now and wakes the workers; False
    if that job is queued, or finished recently enough that arq keeps its result."""
    j = job(queue, store, function, job_id, *args)
    script = queue.register_script(ENQUEUE)
    return bool(await script(j.keys, [j.job_id, now_ms(), j.ttl_ms, j.payload, j.wake]))


def advance_job_id(run_id: str, reason: str, where: tuple[str, str] | None = None) -> str:
    """The id of a job that moves a run forward: one per run and reason, so a reason
    queued twice runs once. ``where`` (thread id, agent id) rides along, so the worker
    takes the thread's lease without reading the run first; neither id can hold ``|``
    or ``/`` (broker/core/ids.py, agent/registry.py)."""
    job_id = f"advance:{run_id}:{reason}"
    return f"{job_id}|{where[0]}/{where[1]}" if where else job_id


def job_ids(job_id: str) -> dict[str, str]:
    """The run, thread and agent ids an advance job's id names, for its log lines."""
    ids = {"job_id": job_id}
    if job_id.startswith("advance:"):
        ids["run_id"] = job_id.split(":", 2)[1]
        where = job_where(job_id)
        if where is not None:
            ids["thread_id"], ids["agent_id"] = where
    return ids


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
