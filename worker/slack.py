"""The Slack jobs: post a new interrupt to its channel, and update the message once the
interrupt is decided or closed.

The event dispatcher (worker/deliveries.py) queues ``post_slack`` for an
``interrupt.created`` a route matches (broker/core/slack.py), and ``update_slack`` for
its ``interrupt.resolved``, ``accepted``, ``expired`` or ``cancelled``, whichever
channel decided it (and ``withdrawn``, which brings the buttons back, and ``voted``,
which shows the votes so far). The posted message's channel and ts are kept
(``Keys.slack_message``) for the update. An update that runs before the post finds no
message; the post then sees the interrupt no longer pending and updates the message it
just made. A Slack API error or an unreachable API is retried with backoff, up to
``ATTEMPTS``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from arq import Retry
from slack_sdk.errors import SlackApiError, SlackClientError

from broker.core import errors, slack_blocks
from broker.core.records import InterruptStatus
from broker.core.slack import Slack
from broker.core.store import Store
from worker.deliveries import backoff_s

log = logging.getLogger("worker.slack")

ATTEMPTS = 6
# How many times one update job sends the message while the interrupt keeps changing.
UPDATE_ROUNDS = 3
MESSAGE_TTL_S = 30 * 24 * 3600


def _failed(ctx: dict[str, Any], what: str, exc: Exception) -> str:
    attempt = int(ctx.get("job_try") or 1)
    if isinstance(exc, SlackApiError) and exc.response.status_code < 500:
        error = exc.response.get("error")
        if error not in ("ratelimited", "internal_error", "service_unavailable"):
            log.warning("%s refused by Slack for good: %s", what, error)
            return "refused"
    if attempt >= ATTEMPTS:
        log.warning("%s: gave up after %d attempts: %s", what, attempt, exc)
        return "gave-up"
    delay = backoff_s(attempt, 2.0, 300.0)
    log.info("%s failed (%s); again in %.1f s", what, exc, delay)
    raise Retry(defer=delay) from exc


async def post_slack(ctx: dict[str, Any], interrupt_id: str, channel: str) -> str:
    """Job: posts interrupt ``interrupt_id`` to Slack channel ``channel``."""
    store: Store = ctx["store"]
    config: Slack | None = ctx.get("slack")
    if config is None:
        return "dropped"
    key = store.keys.slack_message(interrupt_id)
    if await store.r.exists(key):
        return "posted"  # an earlier attempt posted it
    try:
        h = await store.interrupt(interrupt_id)
    except errors.InterruptNotFound:
        return "dropped"
    if h.status != InterruptStatus.PENDING:
        return "dropped"  # decided or closed meanwhile: nothing to ask
    text, blocks = slack_blocks.message(h)
    client = config.client()
    try:
        sent = await asyncio.to_thread(
            client.chat_postMessage, channel=channel, text=text, blocks=blocks
        )
    except (SlackClientError, OSError) as exc:
        return _failed(ctx, f"posting {interrupt_id} to {channel}", exc)
    where = {"channel": str(sent.get("channel") or channel), "ts": str(sent["ts"])}
    await store.r.hset(key, mapping=where)
    await store.r.expire(key, MESSAGE_TTL_S)
    log.info("posted interrupt %s to Slack channel %s", interrupt_id, channel)
    h = await store.interrupt(interrupt_id)
    if h.status != InterruptStatus.PENDING:
        return await update_slack(ctx, interrupt_id)  # decided while it was being posted
    return "posted"


async def update_slack(ctx: dict[str, Any], interrupt_id: str) -> str:
    """Job: replaces the buttons of the interrupt's message with its outcome."""
    store: Store = ctx["store"]
    config: Slack | None = ctx.get("slack")
    where = await store.r.hgetall(store.keys.slack_message(interrupt_id))
    if config is None or not where:
        return "no-message"
    client = config.client()
    sent = None
    # an update that overlaps another (two votes at once) may send an older state last:
    # so the interrupt is read again after each update, and sent again if it moved on
    for _ in range(UPDATE_ROUNDS):
        try:
            h = await store.interrupt(interrupt_id)
        except errors.InterruptNotFound:
            return "dropped" if sent is None else "updated"
        # withdrawn in its undo window: pending again, the buttons come back
        pending = h.status == InterruptStatus.PENDING
        shown = slack_blocks.message(h) if pending else slack_blocks.outcome(h)
        if shown == sent:
            break
        text, blocks = shown
        try:
            await asyncio.to_thread(
                client.chat_update,
                channel=where["channel"],
                ts=where["ts"],
                text=text,
                blocks=blocks,
            )
        except (SlackClientError, OSError) as exc:
            return _failed(ctx, f"updating the message of {interrupt_id}", exc)
        sent = shown
    return "updated"
