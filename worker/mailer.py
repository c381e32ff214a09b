"""The email job: one attempt to send one interrupt's email to one recipient.

The webhook dispatcher (worker/deliveries.py) queues it for each recipient of a new or
reassigned interrupt (broker/core/mail.py), with a job id naming the event and the
recipient, so an event dispatched twice is emailed once. A transient failure (a 4xx
reply, a connection that fails or drops, a timeout) is retried with exponential backoff
until ``BROKER_EMAIL_MAX_ATTEMPTS``; a permanent one (5xx) is given up at once. An
interrupt no longer waiting when its job runs is not emailed. Fresh links are made per
attempt.
"""

from __future__ import annotations

import logging
from typing import Any

import aiosmtplib
from arq import Retry

from broker.core import errors, links, mail
from broker.core.records import InterruptStatus
from broker.core.store import Store
from worker.deliveries import backoff_s

log = logging.getLogger("worker.mailer")

BACKOFF_MAX_S = 3600.0


def transient(exc: Exception) -> bool:
    """Whether sending again later may succeed."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return all(400 <= r.code < 500 for r in exc.recipients)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return 400 <= exc.code < 500
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return False  # the server lacks STARTTLS or login: a setting to change
    return isinstance(exc, aiosmtplib.SMTPException | OSError | TimeoutError)


async def deliver_email(ctx: dict[str, Any], event_id: str, interrupt_id: str, to: str) -> str:
    """Job: one attempt at the email about interrupt ``interrupt_id`` to ``to``."""
    store: Store = ctx["store"]
    s = store.settings
    attempt = int(ctx.get("job_try") or 1)
    try:
        h = await store.interrupt(interrupt_id)
    except errors.InterruptNotFound:
        return "dropped"
    if h.status != InterruptStatus.PENDING:
        return "dropped"  # answered, expired or withdrawn meanwhile: nothing to ask
    message = mail.compose(s, h, to, links.mint(s, h), event_id)
    try:
        await aiosmtplib.send(
            message,
            sender=s.email_from,
            recipients=[to],
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username,
            password=mail.password(s),
            use_tls=s.smtp_tls == "tls",
            start_tls=s.smtp_tls == "starttls",
            timeout=s.smtp_timeout_s,
        )
    except Exception as exc:
        if not transient(exc):
            log.warning("email about %s to %s refused for good: %s", interrupt_id, to, exc)
            return "refused"
        if attempt >= s.email_max_attempts:
            log.warning(
                "email about %s to %s: gave up after %d attempts: %s",
                interrupt_id,
                to,
                attempt,
                exc,
            )
            return "gave-up"
        delay = backoff_s(attempt, s.email_backoff_s, BACKOFF_MAX_S)
        log.info("email about %s to %s failed (%s); again in %.1f s", interrupt_id, to, exc, delay)
        raise Retry(defer=delay) from exc
    log.info("emailed %s about interrupt %s", to, interrupt_id)
    return "delivered"
