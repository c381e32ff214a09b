"""Email as an answer channel: who is emailed about a new or reassigned interrupt, and
the email.

``BROKER_EMAIL_ROUTES`` is a JSON list of rules::

    [{"agent": "naming", "type": "approval", "to": ["ops@example.com"]},
     {"assignees": true}]

A rule without ``agent`` or ``type`` matches any. ``to`` lists addresses; ``assignees:
true`` adds each assignee of the interrupt that is an email (``user:<email>``; groups
and other subjects have no address). Every matching rule adds its recipients, and each
address is emailed once per event. An interrupt reassigned later (``interrupt.assigned``)
is emailed to the assignees with an address that its assignees just before did not
name, under the ``assignees: true`` rules. Emails go out over SMTP
(``BROKER_SMTP_HOST``; unset: email is off) from worker jobs (worker/mailer.py), one per
event and recipient, and carry one action link per choice (broker/core/links.py), so
links must be on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from html import escape
from pathlib import Path
from typing import Any

from broker.core import shapes
from broker.core.records import InterruptRecord
from broker.core.settings import Settings, parsed_once

log = logging.getLogger("broker.core.mail")

_ADDRESS = re.compile(r"^[^@\s<>()\[\],;:\"\\]{1,64}@[A-Za-z0-9.\-]{1,253}$")
MAX_TO = 50
"""Most addresses one rule may list."""


class EmailConfigError(ValueError):
    """The email settings are unusable; the message says which and why."""


@dataclass(frozen=True)
class Route:
    agent: str | None
    type: str | None
    to: tuple[str, ...]
    assignees: bool

    def matches(self, agent_id: Any, itype: Any) -> bool:
        return (self.agent is None or self.agent == agent_id) and (
            self.type is None or self.type == itype
        )


def address(text: Any) -> str | None:
    """``text`` as an address (lower case), or None when it is not a plain one."""
    return text.lower() if isinstance(text, str) and _ADDRESS.match(text) else None


@parsed_once
def routes(config: list[Any] | None) -> tuple[Route, ...]:
    """The configured rules (``BROKER_EMAIL_ROUTES``); raises EmailConfigError."""
    out = []
    for n, rule in enumerate(config or []):
        where = f"BROKER_EMAIL_ROUTES rule {n}"
        if not isinstance(rule, dict):
            raise EmailConfigError(f"{where} must be an object")
        unknown = set(rule) - {"agent", "type", "to", "assignees"}
        if unknown:
            raise EmailConfigError(f"{where} has unknown fields {sorted(unknown)}")
        for field in ("agent", "type"):
            if rule.get(field) is not None and not isinstance(rule[field], str):
                raise EmailConfigError(f"{where}: {field} must be a string")
        to = rule.get("to", [])
        if not isinstance(to, list) or len(to) > MAX_TO:
            raise EmailConfigError(f"{where}: to must be a list of at most {MAX_TO} addresses")
        bad = [a for a in to if address(a) is None]
        if bad:
            raise EmailConfigError(f"{where}: {bad[0]!r} is not an email address")
        if not isinstance(rule.get("assignees", False), bool):
            raise EmailConfigError(f"{where}: assignees must be true or false")
        if not to and not rule.get("assignees"):
            raise EmailConfigError(f"{where} emails nobody: give it to, or assignees: true")
        addresses = tuple(dict.fromkeys(a.lower() for a in to))
        out.append(
            Route(rule.get("agent"), rule.get("type"), addresses, bool(rule.get("assignees")))
        )
    return tuple(out)


def configured(settings: Settings, *, links_on: bool) -> tuple[Route, ...]:
    """The routes when email is on (none when it is off); raises EmailConfigError for
    settings that cannot send."""
    rules = routes(settings.email_routes)
    if not settings.smtp_host:
        if rules:
            raise EmailConfigError(
                "BROKER_EMAIL_ROUTES is set but BROKER_SMTP_HOST is not: set the SMTP "
                "server's host (and BROKER_SMTP_PORT, BROKER_SMTP_TLS), or unset the routes"
            )
        return ()
    if not rules:
        log.warning("BROKER_SMTP_HOST is set but BROKER_EMAIL_ROUTES is not: nobody is emailed")
        return ()
    if address(settings.email_from) is None:
        raise EmailConfigError(
            "BROKER_EMAIL_FROM must be the address emails come from, such as broker@example.com"
        )
    if not links_on:
        raise EmailConfigError(
            "emails carry action links: set BROKER_LINK_SECRET to use BROKER_EMAIL_ROUTES"
        )
    if settings.smtp_password and settings.smtp_password_file:
        raise EmailConfigError("set BROKER_SMTP_PASSWORD or BROKER_SMTP_PASSWORD_FILE, not both")
    if bool(settings.smtp_username) != bool(settings.smtp_password or settings.smtp_password_file):
        raise EmailConfigError(
            "BROKER_SMTP_USERNAME and a password (BROKER_SMTP_PASSWORD or "
            "BROKER_SMTP_PASSWORD_FILE) go together: set both, or neither"
        )
    password(settings)
    return rules


def password(settings: Settings) -> str | None:
    """The SMTP password, read from its file when one is named."""
    if not settings.smtp_password_file:
        return settings.smtp_password
    try:
        return Path(settings.smtp_password_file).read_text().strip() or None
    except OSError as exc:
        raise EmailConfigError(f"BROKER_SMTP_PASSWORD_FILE: {exc}") from exc


def recipients(rules: tuple[Route, ...], event: dict[str, Any]) -> list[str]:
    """Who is emailed about ``event``: a new interrupt that a rule matches, and an
    interrupt reassigned (``interrupt.assigned``, by a person or an escalation step) to
    people its assignees just before did not name, under a rule with ``assignees:
    true``."""
    kind = event.get("type")
    if kind not in ("interrupt.created", "interrupt.assigned") or not rules:
        return []
    data = event.get("data") or {}
    created = kind == "interrupt.created"
    before = set() if created else set(data.get("previous_assignees") or [])
    out: dict[str, None] = {}
    for rule in rules:
        if not rule.matches(event.get("agent_id"), data.get("type")):
            continue
        if created:
            out.update(dict.fromkeys(rule.to))
        if rule.assignees:
            for name in data.get("assignees") or []:
                if name in before:
                    continue
                scheme, _, rest = str(name).partition(":")
                found = address(rest) if scheme == "user" else None
                if found:
                    out[found] = None
    return list(out)


def question(value: Any) -> str:
    """The question in one line: its content, or its first action's description."""
    text: Any = value
    if isinstance(value, dict):
        text = value.get("content") or value.get("description") or value.get("question")
        if not text and shapes.is_hitl_request(value) and value["action_requests"]:
            first = value["action_requests"][0]
            text = first.get("description") if isinstance(first, dict) else None
    if not isinstance(text, str) or not text.strip():
        return "A question is waiting for an answer"
    return " ".join(text.split())


def compose(
    settings: Settings, h: InterruptRecord, to: str, links: list[dict[str, Any]], event_id: str
) -> EmailMessage:
    """The email to ``to`` about interrupt ``h``: plain text and HTML, one link per choice."""
    asked = question(h.value)
    dashboard = f"{settings.public_url.rstrip('/')}/#/runs/{h.run_id}"
    details = json.dumps(h.value, indent=2, ensure_ascii=False, default=str)[:4000]
    msg = EmailMessage()
    subject = f"[{h.agent_id}] {asked}"
    msg["Subject"] = subject if len(subject) <= 150 else subject[:149] + "…"
    msg["From"] = str(settings.email_from)
    msg["To"] = to
    msg["Date"] = formatdate()
    digest = hashlib.sha256(to.encode()).hexdigest()[:16]
    domain = str(settings.email_from).rpartition("@")[2]
    msg["Message-ID"] = f"<{event_id}.{digest}@{domain}>"  # the same on every attempt
    msg["X-Interrupt-Id"] = h.id
    lines = [f"Agent {h.agent_id} asks:", "", asked, "", "Answer with one of these links:"]
    lines += [f"  {link['label']}: {link['url']}" for link in links]
    expires = f"Each link answers once, until {links[0]['expires_at']}." if links else ""
    lines += ["", expires, "", f"Open it in the dashboard: {dashboard}", "", details]
    msg.set_content("\n".join(lines) + "\n")
    items = "".join(
        f'<li><a href="{escape(link["url"])}">{escape(link["label"])}</a></li>' for link in links
    )
    msg.add_alternative(
        "<!doctype html><html><body>"
        f"<p>Agent {escape(h.agent_id)} asks:</p><p><strong>{escape(asked)}</strong></p>"
        f"<p>Answer with one of these links:</p><ul>{items}</ul><p>{escape(expires)}</p>"
        f'<p><a href="{escape(dashboard)}">Open it in the dashboard</a></p>'
        f"<details><summary>Details</summary><pre>{escape(details)}</pre></details>"
        "</body></html>",
        subtype="html",
    )
    return msg
