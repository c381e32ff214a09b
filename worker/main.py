"""The arq worker: its settings, its jobs, and its start and stop.

The worker class, which also wakes on new work, is in worker/_arq.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from typing import Any

import httpx
from arq import Retry
from arq.worker import func
from redis.exceptions import RedisError

from agent.registry import load_registry
from broker.core import config, errors, telemetry
from broker.core.connections import queue_pool, redis_client, watch_primary
from broker.core.durable import Durability
from broker.core.fence import Fenced
from broker.core.keys import Keys
from broker.core.saver import RedisCheckpointSaver
from broker.core.settings import Settings, get_settings
from broker.core.store import Store
from worker import deadlines, deliveries, mailer, metrics, reconciler, retention, slack
from worker._arq import BrokerWorker
from worker.liveness import Heartbeat
from worker.locks import LockBusy, LockLost
from worker.runner import AgentUnavailable, Runner

log = logging.getLogger("worker")


async def advance(ctx: dict[str, Any], run_id: str, trace: dict[str, str] | None = None) -> str:
    """Job: move one run forward (start it, resume it, or recover it). ``trace``: the
    trace context of the step that queued it (broker/core/telemetry.py)."""
    telemetry.received(trace)
    runner: Runner = ctx["runner"]
    settings: Settings = ctx["settings"]
    last_try = ctx.get("job_try", 1) >= settings.job_max_tries
    try:
        outcome = await runner.advance(run_id, ctx["job_id"], last_try=last_try)
    except (LockBusy, LockLost, Fenced) as exc:
        raise Retry(defer=1) from exc
    except (RedisError, OSError) as exc:
        # a failover under way, an outage, or a write its replicas did not confirm: the
        # same job runs again (the run stays due; the reconciler is the net if this is lost)
        try_ = int(ctx.get("job_try", 1))
        log.warning("run %s met a Redis error (%s); retrying the job", run_id, exc)
        raise Retry(defer=min(try_, 5)) from exc
    except AgentUnavailable as exc:
        # another worker may have the agent (a rolling deployment): let it take the job
        raise Retry(defer=2) from exc
    except Exception as exc:
        if errors.unavailable(exc) is None:
            raise
        # Redis failed under the attempt: nothing was recorded as done, so the same job
        # runs again (the run stays due; the reconciler is the net if this is lost too)
        raise Retry(defer=2) from exc
    if outcome == "held" and not last_try:
        # the job came before the undo window closed by this worker's clock: once more,
        # shortly (the run is due then too, for the reconciler)
        raise Retry(defer=1)
    return outcome


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx.setdefault("settings", get_settings())
    # refuse to start on unusable configuration, not at the first interrupt
    checked = config.check(settings, "worker")
    webhook_config = checked.webhooks
    metrics.serve(settings)  # once per process: a worker started again keeps its server
    telemetry.setup("worker")
    store_redis = redis_client(settings)
    saver_redis = redis_client(settings, decode=False)
    keys = Keys(settings.key_prefix)
    registry = load_registry(settings.langgraph_json, settings.agents)
    saver = RedisCheckpointSaver(
        saver_redis,
        keys,
        ttl_s=settings.checkpoint_ttl_s or None,
        durable=Durability(saver_redis, settings),
        # a lease outlives an outage this long at most: past it, the fence decides
        ride_out_s=settings.lease_ttl_s,
    )
    store = Store(store_redis, settings)
    worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    graphs = {a: spec.graph for a, spec in registry.items()}
    arq_worker: BrokerWorker | None = ctx.get("arq_worker")
    heartbeat = Heartbeat(
        store,
        worker_id,
        taking_jobs=lambda: arq_worker is None or arq_worker.taking_jobs,
        draining=lambda: arq_worker is not None and arq_worker.draining,
    )
    ctx.update(
        store_redis=store_redis,
        saver_redis=saver_redis,
        store=store,
        runner=Runner(store, graphs, saver, settings, worker_id=worker_id),
        worker_id=worker_id,
        heartbeat=heartbeat,
        webhook_config=webhook_config,
        slack=checked.slack,
        http=httpx.AsyncClient(trust_env=False, follow_redirects=False),
    )
    # the first heartbeat before the first job: a lease's holder always has one
    await heartbeat.beat()
    watcher = watch_primary(settings)  # under Sentinel: leave a replaced primary at once
    ctx["background"] = [
        *([watcher] if watcher is not None else []),
        asyncio.create_task(heartbeat.loop()),
        asyncio.create_task(reconciler.loop(store, ctx["redis"], heartbeat)),
        asyncio.create_task(deadlines.loop(store, ctx["redis"], ctx["worker_id"])),
        asyncio.create_task(retention.loop(store, ctx["worker_id"])),
        asyncio.create_task(
            deliveries.dispatch_loop(
                store,
                ctx["redis"],
                ctx["worker_id"],
                webhook_config,
                checked.email,
                checked.slack,
            )
        ),
    ]
    log.info("worker %s ready for agents: %s", ctx["worker_id"], ", ".join(registry))


async def shutdown(ctx: dict[str, Any]) -> None:
    for task in ctx.get("background", []):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    store: Store | None = ctx.get("store")
    if store is not None:
        await store.r.zrem(store.keys.workers, ctx["worker_id"])
    if ctx.get("http") is not None:
        await ctx["http"].aclose()
    for name in ("store_redis", "saver_redis"):
        client = ctx.get(name)
        if client is not None:
            await client.aclose()
    telemetry.flush()


def worker_kwargs(settings: Settings) -> dict[str, Any]:
    keys = Keys(settings.key_prefix)
    return {
        "functions": [
            func(advance, name="advance", max_tries=settings.job_max_tries),
            func(
                deliveries.deliver_webhook,
                name="deliver_webhook",
                max_tries=settings.webhook_max_attempts + 1,
            ),
            func(
                mailer.deliver_email,
                name="deliver_email",
                max_tries=settings.email_max_attempts + 1,
            ),
            func(slack.post_slack, name="post_slack", max_tries=slack.ATTEMPTS + 1),
            func(slack.update_slack, name="update_slack", max_tries=slack.ATTEMPTS + 1),
        ],
        "on_startup": startup,
        "on_shutdown": shutdown,
        # arq's pool and the wake listener's client, with the broker's target and timeouts
        "redis_pool": queue_pool(settings, keys.queue),
        "wake_redis": redis_client(settings, block_s=None),
        "queue_name": keys.queue,
        "max_jobs": settings.worker_max_jobs,
        "job_timeout": settings.job_timeout_s,
        "poll_delay": settings.poll_delay_s,
        "allow_abort_jobs": True,
        # on SIGTERM: take no new job, let running ones finish within the grace, then
        # cancel the rest, which arq puts back in the queue for another worker
        "job_completion_wait": settings.drain_grace_s,
        "keep_result": 3600,
        "ctx": {"settings": settings},
        "wake_channel": keys.wake_channel,
    }


def build_worker(settings: Settings, **overrides: Any) -> BrokerWorker:
    return BrokerWorker(**{**worker_kwargs(settings), **overrides})


async def run_worker(settings: Settings | None = None) -> None:
    """Runs a worker until SIGINT/SIGTERM. A Redis failure that stops arq's loop (a
    failover: no primary, a demoted one, NOREPLICAS) starts a new worker in the same
    process, so the process outlives it."""
    settings = settings or get_settings()
    while True:
        worker = build_worker(settings)
        try:
            await worker.async_run()
            return
        except asyncio.CancelledError:
            return  # arq's signal handler cancels the main task: a normal shutdown
        except RedisError:
            log.warning("Redis failed under the worker; starting again", exc_info=True)
        finally:
            await _close(worker)
        await asyncio.sleep(1)


async def _close(worker: BrokerWorker) -> None:
    try:
        await worker.close()
    except Exception as exc:
        # a job's last write failed with the connection: close the rest by hand
        log.warning("stopped without cleaning up in Redis (%s)", exc)
        if worker.on_shutdown is not None:
            with contextlib.suppress(Exception):
                await worker.on_shutdown(worker.ctx)
        with contextlib.suppress(Exception):
            await worker.pool.close(close_connection_pool=True)


def __getattr__(name: str) -> Any:
    # ``arq worker.main.WorkerSettings`` works too; built on first use, since reading
    # the settings at import would fail wherever REDIS_URL is not set.
    if name == "WorkerSettings":
        kwargs = worker_kwargs(get_settings())
        kwargs.pop("wake_channel")
        kwargs.pop("wake_redis")
        return type("WorkerSettings", (), kwargs)
    raise AttributeError(name)
