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
from broker.core import config
from broker.core.codec import now_ms
from broker.core.connections import queue_pool, redis_client, watch_primary
from broker.core.durable import Durability
from broker.core.keys import Keys
from broker.core.saver import RedisCheckpointSaver
from broker.core.settings import Settings, get_settings
from broker.core.store import Store
from worker import deadlines, deliveries, reconciler
from worker._arq import BrokerWorker
from worker.locks import LockBusy, LockLost
from worker.runner import AgentUnavailable, Runner

log = logging.getLogger("worker")


async def advance(ctx: dict[str, Any], run_id: str) -> str:
    """Job: move one run forward (start it, resume it, or recover it)."""
    runner: Runner = ctx["runner"]
    settings: Settings = ctx["settings"]
    last_try = ctx.get("job_try", 1) >= settings.job_max_tries
    try:
        return await runner.advance(run_id, ctx["job_id"], last_try=last_try)
    except (LockBusy, LockLost) as exc:
        raise Retry(defer=1) from exc
    except RedisError as exc:
        # a failover under way (or a write its replicas did not confirm): try again soon;
        # the run stays due, so the reconciler queues it if this retry is lost too
        raise Retry(defer=1) from exc
    except AgentUnavailable as exc:
        # another worker may have the agent (a rolling deployment): let it take the job
        raise Retry(defer=2) from exc


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx.setdefault("settings", get_settings())
    # refuse to start on unusable configuration, not at the first interrupt
    webhook_config = config.check(settings, "worker").webhooks
    store_redis = redis_client(settings)
    saver_redis = redis_client(settings, decode=False)
    keys = Keys(settings.key_prefix)
    registry = load_registry(settings.langgraph_json, settings.agents)
    saver = RedisCheckpointSaver(
        saver_redis,
        keys,
        ttl_s=settings.checkpoint_ttl_s or None,
        durable=Durability(saver_redis, settings),
    )
    store = Store(store_redis, settings)
    ctx.update(
        store_redis=store_redis,
        saver_redis=saver_redis,
        store=store,
        runner=Runner(store, {a: spec.graph for a, spec in registry.items()}, saver, settings),
        worker_id=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}",
        webhook_config=webhook_config,
        http=httpx.AsyncClient(trust_env=False, follow_redirects=False),
    )
    watcher = watch_primary(settings)  # under Sentinel: leave a replaced primary at once
    ctx["background"] = [
        *([watcher] if watcher is not None else []),
        asyncio.create_task(_heartbeat(ctx)),
        asyncio.create_task(reconciler.loop(store, ctx["redis"], ctx["worker_id"])),
        asyncio.create_task(deadlines.loop(store, ctx["redis"], ctx["worker_id"])),
        asyncio.create_task(
            deliveries.dispatch_loop(store, ctx["redis"], ctx["worker_id"], webhook_config)
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


async def _heartbeat(ctx: dict[str, Any]) -> None:
    store: Store = ctx["store"]
    every = store.settings.worker_heartbeat_s
    while True:
        with contextlib.suppress(Exception):
            now = now_ms()
            await store.r.zadd(store.keys.workers, {ctx["worker_id"]: now})
            await store.r.zremrangebyscore(store.keys.workers, "-inf", now - every * 6000)
        await asyncio.sleep(every)


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
    except Exception:
        # a job's last write failed with the connection: close the rest by hand
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
