"""The one place the worker relies on arq beyond its public API.

arq polls its queue every ``poll_delay``. The API also publishes on a wake channel
whenever it queues a job, naming the job; this worker listens on it and starts the named
jobs at once (a wake-up that names none, from the reconciler or the hand-on pass, runs
one poll), so an idle worker starts a job without waiting out the delay or reading the
queue, and the delay only bounds how late a missed wake-up can be.

arq's poll loop (``Worker.main``) lets a Redis error end the worker. Here a poll that
meets an outage (Redis down, full, read-only, loading, stalled) is logged and backed
off instead, and the loop goes on; the worker never exits for it:

- ``_poll_iteration`` (reads the queue, starts jobs, reaps finished ones, writes arq's
  health key): an outage skips the rest of the poll and waits, doubling up to
  ``BACKOFF_S``; ``polled_at`` records the last poll that got through, which the
  broker's heartbeat follows;
- ``start_jobs``: one script per job (``START``) where arq takes six round trips
  (WATCH, EXISTS, ZSCORE, MULTI, PSETEX, EXEC), jobs already running here are skipped
  without asking Redis, and a slot taken for a job whose mark fails is given back;
- ``_cancel_aborted_jobs``: one ZRANGE, and none while no job runs here (a job asked
  to stop before it starts is dropped by arq's ``run_job``);
- ``run_job``: when Redis fails before arq could record the job's end, the job's
  in-progress mark would hold it for ``job_timeout`` more seconds; it is cleared at the
  next poll that gets through, so the job (whose run is idempotent) runs again at once.

arq counts the jobs it hands back to the queue (a ``Retry``, a cancelled job) in
``jobs_retried`` and those that failed for good (an error, a timeout, an abort) in
``jobs_failed``; every increment also goes to the worker's metrics (worker/metrics.py).

The private parts are ``Worker._poll_iteration``, ``start_jobs``,
``_cancel_aborted_jobs``, ``run_job``, the two counters and the attributes they use:
checked against the arq versions ``pyproject.toml`` allows (``ARQ_CHECKED``), which
tests/test_worker_arq.py asserts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import arq.worker
import redis.asyncio as aioredis
from arq import Worker
from arq.utils import timestamp_ms
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from broker.core import errors, logs
from broker.core.jobs import job_ids
from worker import metrics

log = logging.getLogger("worker")

ARQ_CHECKED = ("0.26", "0.27", "0.28")
# The wait after a poll that met an outage: doubled each time, up to the cap.
BACKOFF_S = (0.5, 5.0)
Hook = Callable[[dict[str, Any]], Awaitable[Any]]

# Marks a due job in progress unless it already is: its queue score, or nil when it is
# running elsewhere, finished (gone from the queue) or deferred again (scored later).
# KEYS: 1 in-progress key, 2 queue; ARGV: 1 job id, 2 now ms, 3 in-progress ttl ms.
START = """
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then return nil end
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[3]) then return nil end
return score
"""


class BrokerWorker(Worker):
    """An arq worker that also polls as soon as the wake channel fires."""

    _listener: asyncio.Task[None] | None = None
    _retried = 0
    _failed = 0

    def __init__(
        self, *args: Any, wake_channel: str, wake_redis: aioredis.Redis, **kwargs: Any
    ) -> None:
        startup: Hook | None = kwargs.pop("on_startup", None)
        shutdown: Hook | None = kwargs.pop("on_shutdown", None)

        async def on_startup(ctx: dict[str, Any]) -> None:
            ctx["arq_worker"] = self
            if startup:
                await startup(ctx)
            self._listener = asyncio.create_task(self._listen())

        async def on_shutdown(ctx: dict[str, Any]) -> None:
            if self._listener is not None:
                self._listener.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._listener
            if shutdown:
                await shutdown(ctx)
            await self.wake_redis.aclose()

        super().__init__(*args, on_startup=on_startup, on_shutdown=on_shutdown, **kwargs)
        self.wake_channel = wake_channel
        # a client of its own: pub/sub waits without a socket timeout
        self.wake_redis = wake_redis
        self.polled_at = self.loop.time()
        self._backoff = BACKOFF_S[0]
        self._outage = False
        self._unmarked: set[str] = set()  # jobs whose in-progress mark is left to clear
        self._start: AsyncScript | None = None
        self._wake = asyncio.Event()
        self._woken: set[str] = set()  # jobs the wake-ups named since the last start
        self._unnamed = False  # a wake-up named no job: poll the queue

    @property
    def jobs_retried(self) -> int:
        return self._retried

    @jobs_retried.setter
    def jobs_retried(self, n: int) -> None:
        metrics.JOBS_RETRIED.inc(max(0, n - self._retried))
        self._retried = n

    @property
    def jobs_failed(self) -> int:
        return self._failed

    @jobs_failed.setter
    def jobs_failed(self, n: int) -> None:
        metrics.JOBS_FAILED.inc(max(0, n - self._failed))
        self._failed = n

    @property
    def draining(self) -> bool:
        """Whether the worker was told to stop: it starts no new job."""
        return not self.allow_pick_jobs

    @property
    def taking_jobs(self) -> bool:
        """Whether the poll loop runs and may start jobs (what a heartbeat claims)."""
        main = getattr(self, "main_task", None)
        return not self.draining and main is not None and not main.done()

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
            if self._unmarked:
                await self._clear_marks()
        except Exception as exc:
            if errors.unavailable(exc) is not None:
                if not self._outage:
                    log.warning("Redis is unavailable (%s); polling again with back-off", exc)
            elif isinstance(exc, RedisError):
                log.error("poll failed; polling again with back-off", exc_info=exc)
            else:
                raise
            self._outage = True
            await asyncio.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, BACKOFF_S[1])
            return
        if self._outage:
            log.info("Redis answers again; polling as usual")
        self._outage = False
        self._backoff = BACKOFF_S[0]
        self.polled_at = self.loop.time()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """arq's ``start_jobs`` in one round trip per job (the ``START`` script), skipping
        the jobs this worker already runs, and giving the slot back when Redis fails."""
        for job_id_b in job_ids:
            job_id = job_id_b.decode()
            if job_id in self.tasks:
                continue  # running here: still in the queue until it finishes
            await self.sem.acquire()
            if self.job_counter >= self.max_jobs:
                self.sem.release()
                return
            self.job_counter += 1
            # read at each call: broker/core/arq_keys.py puts arq's keys under the prefix
            in_progress_key = arq.worker.in_progress_key_prefix + job_id
            started = False
            try:
                if self._start is None:
                    self._start = self.pool.register_script(START)
                score = await self._start(
                    [in_progress_key, self.queue_name],
                    [job_id, timestamp_ms(), int(self.in_progress_timeout_s * 1000)],
                    client=self.pool,
                )
                if score is None:
                    continue  # running elsewhere, finished, or deferred again
                task = self.loop.create_task(self.run_job(job_id, int(float(score))))
                task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
                self.tasks[job_id] = task
                started = True
            finally:
                if not started:
                    self.job_counter -= 1
                    self.sem.release()

    async def _cancel_aborted_jobs(self) -> None:
        """arq's abort check in one command, and none while no job runs here: a job
        asked to stop before it starts is skipped by ``run_job`` itself."""
        if not self.job_tasks:
            return
        asked = await self.pool.zrange(arq.worker.abort_jobs_ss, 0, -1)
        aborted = set()
        for job_id in (b.decode() for b in asked):
            task = self.job_tasks.get(job_id)
            if task is not None:
                aborted.add(job_id)
                task.cancel()
        if aborted:
            self.aborting_tasks.update(aborted)
            await self.pool.zrem(arq.worker.abort_jobs_ss, *aborted)

    async def run_job(self, job_id: str, score: int) -> None:
        # every line about the job, arq's own included, carries its ids (broker/core/logs.py)
        ids = logs.begin()
        logs.bind(**job_ids(job_id))
        try:
            await super().run_job(job_id, score)
        except Exception as exc:
            if errors.unavailable(exc) is None:
                raise
            # arq could not record how the job ended; run it again once Redis answers
            log.warning("job %s: Redis failed around it (%s); it will run again", job_id, exc)
            self._unmarked.add(job_id)
        finally:
            logs.end(ids)

    async def _clear_marks(self) -> None:
        for job_id in list(self._unmarked):
            if job_id not in self.tasks:
                await self.pool.delete(arq.worker.in_progress_key_prefix + job_id)
            self._unmarked.discard(job_id)

    async def _listen(self) -> None:
        """Follows the wake channel; each message asks for one poll (``_polls``). A wake
        that arrives while a poll runs asks for another after it, since that poll may have
        read the queue before the new job was in it."""
        poller = asyncio.create_task(self._polls())
        try:
            while True:
                try:
                    async with self.wake_redis.pubsub() as ps:
                        await ps.subscribe(self.wake_channel)
                        async for message in ps.listen():
                            if message.get("type") == "message":
                                self._woke(message.get("data"))
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # Redis went away: arq's own polling still runs; resubscribe when back
                    log.debug("wake channel lost; resubscribing", exc_info=True)
                    await asyncio.sleep(1)
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller

    def _woke(self, data: Any) -> None:
        job_id = data.decode() if isinstance(data, bytes) else str(data or "")
        if job_id and job_id != "1":
            self._woken.add(job_id)
        else:
            self._unnamed = True
        self._wake.set()

    async def _polls(self) -> None:
        """One poll per wake-up (several while a poll runs make one more after it). When
        every wake-up named its job, those jobs are started without reading the queue."""
        while True:
            await self._wake.wait()
            self._wake.clear()  # wakes during the poll below set it again
            named, self._woken = self._woken, set()
            unnamed, self._unnamed = self._unnamed, False
            if named and not unnamed and self.allow_pick_jobs:
                try:
                    await self.start_jobs([job_id.encode() for job_id in sorted(named)])
                    continue
                except Exception:
                    pass  # the poll below, with its back-off, takes it from here
            try:
                await self._poll_iteration()
            except Exception:
                log.exception("poll after a wake-up failed; arq's own polling goes on")
