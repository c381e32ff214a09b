"""Slack as an answer channel: its settings, which interrupts go where, and who answers.

``BROKER_SLACK_ROUTES`` is a JSON list of rules ``{"agent"?, "type"?, "channel": "C123"}``;
a new interrupt goes to the channel of the first rule that matches it (a rule without
``agent`` or ``type`` matches any). The message carries buttons (broker/core/slack_blocks.py);
a click or a modal submission comes back to ``POST /slack/interactivity``
(broker/api/routes/slack.py), signed with the app's signing secret, and answers through
``channel.answer`` as the person ``BROKER_SLACK_USERS`` maps the Slack user to
(``{"U123": "user:alice@example.com"}``), so assignment applies to that person. A
Slack user the map does not name answers nothing.

Posting and updating the message are worker jobs (worker/slack.py), queued by the event
dispatcher (worker/deliveries.py) with slack_sdk's ``WebClient``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from slack_sdk import WebClient
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.base_client import BaseClient
from slack_sdk.webhook import WebhookClient

from broker.core import auth

ISSUER = "slack"
"""The issuer of the person a Slack user answers as (their resolution's ``person.iss``)."""
UPDATED_ON = frozenset(
    {
        "interrupt.resolved",
        "interrupt.voted",
        "interrupt.accepted",
        "interrupt.withdrawn",
        "interrupt.expired",
        "interrupt.cancelled",
    }
)
"""The events after which an interrupt's Slack message is updated (worker/slack.py)."""
_CHANNEL = r"^[A-Z0-9]{2,40}$"


class SlackConfigError(ValueError):
    """The Slack settings are unusable; the message says which and why."""


class SlackSettings(BaseSettings):
    """``BROKER_SLACK_*``: Slack is on when a bot token and routes are set."""

    model_config = SettingsConfigDict(env_prefix="BROKER_", extra="ignore")

    slack_bot_token: str | None = None
    slack_bot_token_file: str | None = None
    slack_signing_secret: str | None = None
    slack_signing_secret_file: str | None = None
    slack_api_url: str = Field(default=BaseClient.BASE_URL, pattern=r"^https?://\S+$")
    slack_routes: Annotated[list[Any] | None, NoDecode] = None
    slack_users: Annotated[dict[str, Any] | None, NoDecode] = None
    slack_timeout_s: int = Field(default=10, gt=0, le=60)

    @field_validator("slack_routes", "slack_users", mode="before")
    @classmethod
    def _json(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value) if value else None
            except json.JSONDecodeError as exc:
                where = f"BROKER_{(info.field_name or '').upper()}"
                raise ValueError(f"{where} is not valid JSON: {exc}") from exc
        return value


@dataclass(frozen=True)
class Route:
    agent: str | None
    type: str | None
    channel: str

    def matches(self, agent_id: Any, itype: Any) -> bool:
        return (self.agent is None or self.agent == agent_id) and (
            self.type is None or self.type == itype
        )


@dataclass(frozen=True)
class Slack:
    """Slack as configured: where interrupts go, who answers, and the credentials."""

    routes: tuple[Route, ...]
    users: dict[str, str]
    token: str
    signing_secret: str
    api_url: str
    timeout_s: int

    def channel_for(self, event: dict[str, Any]) -> str | None:
        """The channel an interrupt event's interrupt is posted to, if any."""
        data = event.get("data") or {}
        for rule in self.routes:
            if rule.matches(event.get("agent_id"), data.get("type")):
                return rule.channel
        return None

    def client(self) -> WebClient:
        return WebClient(token=self.token, base_url=self.api_url, timeout=self.timeout_s)

    def replies_to(self, url: Any) -> WebhookClient | None:
        """A client for a click's ``response_url``, when it is Slack's (or at the
        configured API's origin); None for any other address."""
        if not isinstance(url, str):
            return None
        origin = "/".join(self.api_url.split("/", 3)[:3]) + "/"
        if url.startswith(("https://hooks.slack.com/", origin)):
            return WebhookClient(url, timeout=self.timeout_s)
        return None

    def verifier(self) -> SignatureVerifier:
        return SignatureVerifier(self.signing_secret)

    def principal(self, user_id: str, name: str | None = None) -> auth.Principal | None:
        """The person the Slack user answers as; None for a user the map does not name."""
        mapped = self.users.get(user_id)
        if mapped is None:
            return None
        who = mapped.removeprefix("user:")
        person = auth.Person(
            subject=who, issuer=ISSUER, email=who if "@" in who else None, name=name
        )
        return auth.Principal(key_id=None, scopes=frozenset({auth.RESOLVE}), person=person)


def _secret(value: str | None, file: str | None, name: str) -> str | None:
    if value and file:
        raise SlackConfigError(f"set BROKER_{name} or BROKER_{name}_FILE, not both")
    if not file:
        return value or None
    try:
        return Path(file).read_text().strip() or None
    except OSError as exc:
        raise SlackConfigError(f"BROKER_{name}_FILE: {exc}") from exc


def _routes(config: Any) -> tuple[Route, ...]:
    if config is None:
        return ()
    if not isinstance(config, list):
        raise SlackConfigError("BROKER_SLACK_ROUTES must be a JSON list of rules")
    out = []
    for n, rule in enumerate(config):
        where = f"BROKER_SLACK_ROUTES rule {n}"
        if not isinstance(rule, dict):
            raise SlackConfigError(f"{where} must be an object")
        unknown = set(rule) - {"agent", "type", "channel"}
        if unknown:
            raise SlackConfigError(f"{where} has unknown fields {sorted(unknown)}")
        for field in ("agent", "type"):
            if rule.get(field) is not None and not isinstance(rule[field], str):
                raise SlackConfigError(f"{where}: {field} must be a string")
        channel = rule.get("channel")
        if not isinstance(channel, str) or not re.match(_CHANNEL, channel):
            raise SlackConfigError(f"{where}: channel must be a Slack channel id such as C0123")
        out.append(Route(rule.get("agent"), rule.get("type"), channel))
    return tuple(out)


def _users(config: Any) -> dict[str, str]:
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise SlackConfigError(
            'BROKER_SLACK_USERS must be a JSON object such as {"U123": "user:alice@example.com"}'
        )
    for user, name in config.items():
        if not isinstance(name, str) or not name.startswith("user:") or len(name) < 6:
            raise SlackConfigError(
                f"BROKER_SLACK_USERS: {user!r} must map to a person, user:<email or subject>"
            )
    return dict(config)


def configured(settings: SlackSettings | None = None) -> Slack | None:
    """Slack as configured, or None when it is off; raises SlackConfigError for settings
    that cannot work."""
    s = settings or SlackSettings()
    routes, users = _routes(s.slack_routes), _users(s.slack_users)
    token = _secret(s.slack_bot_token, s.slack_bot_token_file, "SLACK_BOT_TOKEN")
    secret = _secret(s.slack_signing_secret, s.slack_signing_secret_file, "SLACK_SIGNING_SECRET")
    if not token and not routes and not secret:
        if users:
            raise SlackConfigError("BROKER_SLACK_USERS is set but Slack is not: set the rest")
        return None
    missing = [
        name
        for name, value in (
            ("BROKER_SLACK_BOT_TOKEN", token),
            ("BROKER_SLACK_SIGNING_SECRET", secret),
            ("BROKER_SLACK_ROUTES", routes),
        )
        if not value
    ]
    if missing:
        raise SlackConfigError(
            f"Slack needs {', '.join(missing)} as well: the bot token posts, the signing "
            "secret checks what Slack sends back, and the routes say which channel gets what"
        )
    assert token and secret
    return Slack(routes, users, token, secret, s.slack_api_url, s.slack_timeout_s)
