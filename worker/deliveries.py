"""Webhook deliveries: a dispatcher that turns events into jobs, and the delivery job.

The dispatcher reads the global event stream through a consumer group, so each event is
dispatched once across all workers; an event is acknowledged only after its jobs are
queued, and entries a dead worker left unacknowledged are claimed by another. Each job
id names the subscription and the event, so an event dispatched twice is delivered once.

With no enabled subscription, it costs nothing per event: it reads one small version
key every ``IDLE_S`` (the API changes it with every managed subscription it saves or
deletes), never the stream, the group or the subscriptions. The group exists only while
a subscription is enabled: the first dispatcher to find one creates it at the change
that enabled it, so a new subscription gets what happens from then on; the last to find
none removes it. The subscriptions themselves are read again only when the version
changes.

A delivery is retried with exponential backoff until it gets a 2xx or has made
``BROKER_WEBHOOK_MAX_ATTEMPTS`` attempts; every attempt goes to the subscription's
delivery log. The message id stays the same across attempts; the timestamp and the
signature are fresh for each.

The same dispatcher queues the emails about new and reassigned interrupts
(broker/core/mail.py, sent by worker/mailer.py): with email routes configured its group
stays open, and each job id names the event and the recipient. With Slack on
(broker/core/slack.py) it queues the Slack jobs (worker/slack.py): a post per new
interrupt a route matches, and an update when that interrupt gets a vote, is decided or
is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import httpx
from arq import Retry
from redis.exceptions import ResponseError

from broker.core import mail, netguard, signing, webhooks
from broker.core.codec import dumps, iso, loads, now_ms
from broker.core.slack import UPDATED_ON, Slack
from broker.core.store import Store
from worker import metrics, outages

log = logging.getLogger("worker.deliveries")

CLAIM_IDLE_MS = 30_000
STALE_MS = 3600_000
IDLE_S = 2.0


def backoff_s(attempt: int, base: float, cap: float) -> float:
    """Seconds before attempt ``attempt + 1``: base, 2·base, 4·base, … up to ``cap``."""
    return float(min(base * 2 ** (attempt - 1), cap))


class Subscriptions:
    """The subscriptions a dispatcher matches events against, read again only when the
    managed ones' version changes."""

    def __init__(self, store: Store, config: dict[str, webhooks.Subscription]) -> None:
        self.store, self.config = store, config
        self.version: str | None = None
        self.managed: list[webhooks.Subscription] = []
        self.read = False

    async def current(self) -> list[webhooks.Subscription]:
        """The enabled subscriptions: one GET, and an HGETALL when they changed."""
        version = await webhooks.version(self.store)
        if not self.read or version != self.version:
            self.managed = list((await webhooks.managed(self.store)).values())
            self.version, self.read = version, True
        return [s for s in (*self.config.values(), *self.managed) if s.enabled]

    def start_id(self) -> str:
        """Where a group created now starts: at the change that enabled a managed
        subscription, or at the stream's end for configured ones."""
        at = webhooks.changed_at_ms(self.version)
        return "$" if self.config or not at else f"{at - 1}-0"


async def _open_group(store: Store, start_id: str) -> None:
    k = store.keys
    try:
        await store.r.xgroup_create(k.events, k.webhook_group, id=start_id, mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):  # another worker created it: read on from there
            raise


async def _close_group(store: Store) -> None:
    # nobody subscribes: the next subscription must not get the events of the meantime
    with contextlib.suppress(ResponseError):  # no stream, or no group: nothing to remove
        await store.r.xgroup_destroy(store.keys.events, store.keys.webhook_group)


async def dispatch_loop(
    store: Store,
    pool: Any,
    consumer: str,
    config: Any,
    email: tuple[mail.Route, ...] = (),
    slack: Slack | None = None,
) -> None:
    """Follows the event stream and queues one delivery job per matching subscription,
    one email job per recipient of a new or reassigned interrupt that ``email`` routes,
    and the Slack jobs of the interrupts ``slack`` routes."""
    always = bool(email or slack)  # channels that need every event
    r, k = store.r, store.keys
    subs = Subscriptions(store, config or {})
    reading: bool | None = None  # unknown until the first look
    claimed_at = 0.0
    wanted: list[webhooks.Subscription] = []
    fresh = False  # ``wanted`` was read just after the last events
    while True:
        try:
            if not fresh:
                wanted = await subs.current()
            fresh = False
            if not wanted and not always:
                if reading is not False:
                    await _close_group(store)
                    reading = False
                await asyncio.sleep(IDLE_S)
                continue
            if not reading:
                await _open_group(store, "$" if always else subs.start_id())
                reading, claimed_at = True, 0.0
            if time.monotonic() - claimed_at > CLAIM_IDLE_MS / 1000:
                claimed_at = time.monotonic()
                _, entries, *_ = await r.xautoclaim(
                    k.events, k.webhook_group, consumer, CLAIM_IDLE_MS, "0-0", count=100
                )
                await _dispatch(store, pool, wanted, entries, email, slack)
                await _forget_gone_consumers(store, consumer)
            got = await r.xreadgroup(
                k.webhook_group, consumer, {k.events: ">"}, count=100, block=2000
            )
            if got:
                # read after the events: a subscription made before them is matched too
                wanted, fresh = await subs.current(), True
            for _, entries in got or []:
                await _dispatch(store, pool, wanted, entries, email, slack)
        except asyncio.CancelledError:
            raise
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                outages.report(log, "dispatching events to webhooks, email and Slack failed", exc)
                await asyncio.sleep(1)
            reading = None  # the last subscription went and came back: look again
        except Exception as exc:
            outages.report(log, "dispatching events to webhooks, email and Slack failed", exc)
            await asyncio.sleep(1)


async def _forget_gone_consumers(store: Store, consumer: str) -> None:
    """Drops consumers of stopped workers (each worker start names a new one); one that
    still runs is recreated by its next read, and one with pending entries is kept."""
    r, k = store.r, store.keys
    for info in await r.xinfo_consumers(k.events, k.webhook_group):
        if info["name"] != consumer and not info["pending"] and info["idle"] > STALE_MS:
            await r.xgroup_delconsumer(k.events, k.webhook_group, info["name"])


async def _dispatch(
    store: Store,
    pool: Any,
    subs: list[webhooks.Subscription],
    entries: list[Any],
    email: tuple[mail.Route, ...] = (),
    slack: Slack | None = None,
) -> None:
    if not entries:
        return
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
        for to in mail.recipients(email, event or {}):
            await pool.enqueue_job(
                "deliver_email",
                f"evt_{eid}",
                event["data"]["interrupt_id"],
                to,
                _job_id=f"email:{eid}:{to}",
                _queue_name=store.keys.queue,
            )
        if slack is not None and event:
            await _slack_jobs(store, pool, slack, eid, event)
    # acknowledged once every job of the batch is queued: a crash before this point
    # leaves the entries pending, and another worker claims and dispatches them again
    await store.r.xack(store.keys.events, store.keys.webhook_group, *[eid for eid, _ in entries])


async def _slack_jobs(store: Store, pool: Any, slack: Slack, eid: str, event: Any) -> None:
    channel = slack.channel_for(event)
    iid = (event.get("data") or {}).get("interrupt_id")
    if channel is None or not isinstance(iid, str):
        return
    job: tuple[str, ...]
    if event.get("type") == "interrupt.created":
        job = ("post_slack", iid, channel)
    elif event.get("type") in UPDATED_ON:
        job = ("update_slack", iid)
    else:
        return
    await pool.enqueue_job(*job, _job_id=f"slack:{eid}:{iid}", _queue_name=store.keys.queue)


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
        metrics.delivery("refused", time.monotonic() - started)
        await webhooks.log_delivery(store, sub_id, entry)
        log.warning("webhook %s refused: %s", sub_id, exc)
        return "refused"
    except httpx.HTTPError as exc:
        ok = False
        entry["error"] = f"{type(exc).__name__}: {exc}"[:500]
    took = time.monotonic() - started
    entry["duration_ms"] = int(took * 1000)
    if ok:
        entry["outcome"] = "delivered"
        metrics.delivery("delivered", took)
        await webhooks.log_delivery(store, sub_id, entry)
        return "delivered"
    if attempt >= s.webhook_max_attempts:
        entry["outcome"] = "gave_up"
        metrics.delivery("gave_up", took)
        await webhooks.log_delivery(store, sub_id, entry)
        log.warning("webhook %s: gave up on %s after %d attempts", sub_id, msg_id, attempt)
        return "gave-up"
    delay = backoff_s(attempt, s.webhook_backoff_s, s.webhook_backoff_max_s)
    entry.update(outcome="failed", next_attempt_in_s=delay)
    metrics.delivery("failed", took)
    await webhooks.log_delivery(store, sub_id, entry)
    raise Retry(defer=delay)
