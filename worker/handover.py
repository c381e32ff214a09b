"""Handing on the runs of dead workers, without waiting for arq.

A running run whose thread lease has lapsed, or is held by a worker whose heartbeat is
stale (worker/liveness.py), gets a job with a fresh id at once. The dead worker's own arq
job stays in progress until arq's ``job_timeout`` passes; when it is delivered again it
finds the run already advanced (begin attempt is idempotent), so the run moves on once.

Freeing a dead holder's lease deletes only the lease, not its fence: if the holder was
alive after all (a long pause), it takes its lease again at its next renewal unless the
new job has taken the thread first, and then its writes are refused.

A lapsed lease is looked at twice (``still_lapsed``). Right after a stall of Redis every
lease has lapsed, and a live holder's renewal, sent during the stall, is served in the
same turn as the first look, in either order. The second look is sent a tenth of a lease
after the first has come back (``SECOND_LOOK``), and sees it taken again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable
from typing import Any, NamedTuple

import redis.asyncio as aioredis

from broker.core.codec import now_ms
from broker.core.keys import Keys
from broker.core.records import RunStatus
from broker.core.store import Store
from worker.liveness import Heartbeat
from worker.locks import holder_of

log = logging.getLogger("worker.handover")

# The wait between the looks at a lapsed lease, as a share of the lease ttl.
SECOND_LOOK = 0.1

# Deletes the lease only if it still holds the dead holder's token. KEYS: 1 lease; ARGV: 1 token.
FREE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Suspect(NamedTuple):
    """A running run whose thread no live holder seems to be on; ``basis`` names the
    lost lease (its token, or the fence or job id of a lapsed one)."""

    run_id: str
    thread_id: str
    basis: str
    lapsed: bool


async def suspects(store: Store, heartbeat: Heartbeat, *, batch: int = 500) -> list[Suspect]:
    """First look: running runs whose lease has lapsed, or whose holder is dead (that
    holder's lease is freed here, compare-and-delete)."""
    k = store.keys
    r = store.r
    # heartbeats are judged as of before the reads: a stall of Redis while they wait
    # ages no heartbeat (all of them are scored from before it)
    now = now_ms()
    running: list[str] = await r.zrange(k.runs_by_status(RunStatus.RUNNING.value), 0, batch - 1)
    if not running:
        return []
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
    out = []
    for (run_id, thread_id, job_id), lease, fence in zip(
        held, replies[::2], replies[1::2], strict=True
    ):
        if lease is None:  # lapsed: its holder stopped renewing it, or Redis stalled
            out.append(Suspect(run_id, thread_id, fence or job_id or "", lapsed=True))
            continue
        holder = holder_of(lease)
        if not heartbeat.dead(workers.get(holder), now):
            continue
        if not await r.eval(FREE, 1, k.thread_lease(thread_id), lease):
            continue  # renewed or released meanwhile
        log.warning("worker %s is dead; handing on run %s", holder, run_id)
        out.append(Suspect(run_id, thread_id, lease, lapsed=False))
    return out


async def still_lapsed(r: aioredis.Redis, keys: Keys, threads: Iterable[str]) -> set[str]:
    """Second look: of threads whose lease was seen lapsed, those that have none now."""
    threads = list(threads)
    if not threads:
        return set()
    async with r.pipeline(transaction=False) as pipe:
        for thread_id in threads:
            pipe.exists(keys.thread_lease(thread_id))
        held = await pipe.execute()
    return {t for t, h in zip(threads, held, strict=True) if not h}


async def hand_over(store: Store, pool: Any, found: list[Suspect]) -> int:
    """Queues a job for each suspect, a lapsed one only if its lease is still lapsed."""
    gone = await still_lapsed(store.r, store.keys, [s.thread_id for s in found if s.lapsed])
    now = now_ms()
    period = max(int(store.settings.lease_ttl_s * 1000), 1)
    queued = 0
    for s in found:
        if s.lapsed and s.thread_id not in gone:
            continue  # its holder took it again
        # one job per lost lease and lease period: a second pass does not queue it again
        digest = hashlib.sha1(s.basis.encode()).hexdigest()[:12]
        job = await pool.enqueue_job(
            "advance", s.run_id, _job_id=f"advance:{s.run_id}:h{digest}{now // period}"
        )
        if job is not None:
            queued += 1
    if queued:
        await store.r.publish(store.keys.wake_channel, "1")
        log.info("handed on %d runs", queued)
    return queued


async def hand_on(store: Store, pool: Any, heartbeat: Heartbeat, *, batch: int = 500) -> int:
    """Queues a job for every running run no live holder is on; returns how many."""
    found = await suspects(store, heartbeat, batch=batch)
    if any(s.lapsed for s in found):
        await between_looks(store)
    return await hand_over(store, pool, found)


async def between_looks(store: Store) -> None:
    """The wait between the two looks at a lapsed lease."""
    await asyncio.sleep(store.settings.lease_ttl_s * SECOND_LOOK)
