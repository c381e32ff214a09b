"""Webhook deliveries: a dispatcher that turns events into jobs, and the delivery job.

The dispatcher reads the global event stream through a consumer group, so each event is
dispatched once across all workers; an event is acknowledged only after its jobs are
queued, and entries a dead worker left unacknowledged are claimed by another. Each job
id names the subscription and the event, so an event dispatched twice is delivered once.
With no subscription at all, it reads nothing: events cost it nothing.

A delivery is retried with exponential backoff until it gets a 2xx or has made
``BROKER_WEBHOOK_MAX_ATTEMPTS`` attempts; every attempt goes to the subscription's
delivery log. The message id stays the same across attempts; the timestamp and the
signature are fresh for each.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
from arq import Retry
from redis.exceptions import ResponseError

from broker.core import netguard, signing, webhooks
from broker.core.codec import dumps, iso, loads, now_ms
from broker.core.store import Store
from worker import outages

log = logging.getLogger("worker.deliveries")

CLAIM_IDLE_MS = 30_000
STALE_MS = 3600_000
IDLE_S = 2.0


def backoff_s(attempt: int, base: float, cap: float) -> float:
    """Seconds before attempt ``attempt + 1``: base, 2·base, 4·base, … up to ``cap``."""
    return float(min(base * 2 ** (attempt - 1), cap))


async def dispatch_loop(store: Store, pool: Any, consumer: str, config: Any) -> None:
    """Follows the event stream and queues one delivery job per matching subscription."""
    r, k = store.r, store.keys
    try:
        await r.xgroup_create(k.events, k.webhook_group, id="$", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    claimed_at = 0.0
    while True:
        try:
            if time.monotonic() - claimed_at > CLAIM_IDLE_MS / 1000:
                claimed_at = time.monotonic()
                _, entries, *_ = await r.xautoclaim(
                    k.events, k.webhook_group, consumer, CLAIM_IDLE_MS, "0-0", count=100
                )
                await _dispatch(store, pool, config, entries)
                await _forget_gone_consumers(store, consumer)
            if not config and not await r.hlen(k.webhooks):
                # nobody subscribes: no event is read, and the group's cursor keeps up so
                # a subscription made now gets only what happens from about now on
                await r.xgroup_setid(k.events, k.webhook_group, "$")
                await asyncio.sleep(IDLE_S)
                continue
            got = await r.xreadgroup(
                k.webhook_group, consumer, {k.events: ">"}, count=100, block=2000
            )
            for _, entries in got or []:
                await _dispatch(store, pool, config, entries)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            outages.report(log, "webhook dispatch failed", exc)
            await asyncio.sleep(1)


async def _forget_gone_consumers(store: Store, consumer: str) -> None:
    """Drops consumers of stopped workers (each worker start names a new one); one that
    still runs is recreated by its next read, and one with pending entries is kept."""
    r, k = store.r, store.keys
    for info in await r.xinfo_consumers(k.events, k.webhook_group):
        if info["name"] != consumer and not info["pending"] and info["idle"] > STALE_MS:
            await r.xgroup_delconsumer(k.events, k.webhook_group, info["name"])


async def _dispatch(store: Store, pool: Any, config: Any, entries: list[Any]) -> None:
    if not entries:
        return
    subs = await webhooks.every(store, config)
    for eid, fields in entries:
        event = loads((fields or {}).get("event"))
        wanted = [s for s in subs if event and s.matches(event)]
        if wanted:
            body = await webhooks.payload(store, eid, event)
            for sub in wanted:
                signed_body = await webhooks.with_links(store, body)
                await pool.enqueue_job(
                    "deliver_webhook",
                    sub.id,
                    f"evt_{eid}",
                    dumps(signed_body),
                    _job_id=f"webhook:{sub.id}:{eid}",
                    _queue_name=store.keys.queue,
                )
    # acknowledged once every job of the batch is queued: a crash before this point
    # leaves the entries pending, and another worker claims and dispatches them again
    await store.r.xack(store.keys.events, store.keys.webhook_group, *[eid for eid, _ in entries])


async def deliver_webhook(ctx: dict[str, Any], sub_id: str, msg_id: str, body: str) -> str:
    """Job: one delivery attempt of one event to one subscription."""
    store: Store = ctx["store"]
    s = store.settings
    attempt = int(ctx.get("job_try") or 1)
    sub = await webhooks.find(store, ctx["webhook_config"], sub_id)
    if sub is None or not sub.enabled:
        return "dropped"
    entry: dict[str, Any] = {
        "id": msg_id,
        "event": loads(body).get("type"),
        "attempt": attempt,
        "at": iso(now_ms()),
        "status_code": None,
        "error": None,
    }
    started = time.monotonic()
    try:
        response = await netguard.post(
            ctx["http"],
            sub.url,
            content=body,
            headers=signing.headers(sub.secret, msg_id, int(time.time()), body),
            allow_private=s.webhook_allow_private,
            timeout=s.webhook_timeout_s,
        )
        entry["status_code"] = response.status_code
        ok = 200 <= response.status_code < 300
        if not ok:
            entry["error"] = f"HTTP {response.status_code}"
    except netguard.UnsafeAddress as exc:
        # not transient: retrying would only probe the same address again
        entry.update(outcome="refused", error=str(exc))
        await webhooks.log_delivery(store, sub_id, entry)
        log.warning("webhook %s refused: %s", sub_id, exc)
        return "refused"
    except httpx.HTTPError as exc:
        ok = False
        entry["error"] = f"{type(exc).__name__}: {exc}"[:500]
    entry["duration_ms"] = int((time.monotonic() - started) * 1000)
    if ok:
        entry["outcome"] = "delivered"
        await webhooks.log_delivery(store, sub_id, entry)
        return "delivered"
    if attempt >= s.webhook_max_attempts:
        entry["outcome"] = "gave_up"
        await webhooks.log_delivery(store, sub_id, entry)
        log.warning("webhook %s: gave up on %s after %d attempts", sub_id, msg_id, attempt)
        return "gave-up"
    delay = backoff_s(attempt, s.webhook_backoff_s, s.webhook_backoff_max_s)
    entry.update(outcome="failed", next_attempt_in_s=delay)
    await webhooks.log_delivery(store, sub_id, entry)
    raise Retry(defer=delay)
