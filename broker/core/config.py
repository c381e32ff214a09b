"""The one configuration check every entry point runs before it starts: ``broker api``,
``broker worker``, the FastAPI factory and arq's own ``WorkerSettings`` all call
``check``, so a process refuses unusable configuration at start, not at first use.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from broker.core import (
    assignment,
    auth,
    connections,
    durable,
    escalation,
    expiry,
    links,
    mail,
    oidc,
    receipts,
    rules,
    slack,
    telemetry,
    undo,
    webhooks,
)
from broker.core.settings import Settings

log = logging.getLogger("broker.core.config")

Process = Literal["api", "worker"]


@dataclass(frozen=True)
class Checked:
    """What the check built on the way, for the process to use."""

    keyring: auth.KeyRing
    webhooks: dict[str, webhooks.Subscription]
    link_key: bytes | None
    verifier: oidc.Verifier | None = None
    """Set when people sign in with an OpenID provider's tokens."""
    email: tuple[mail.Route, ...] = ()
    """Who is emailed about new interrupts; empty when email is off."""
    slack: slack.Slack | None = None
    """Slack as configured (broker/core/slack.py); None when it is off."""


def check(settings: Settings, process: Process) -> Checked:
    """Raises ValueError (or RuntimeError for a missing ``REDIS_URL``), naming the fix,
    for configuration ``process`` must not run with."""
    connections.parse_url(settings.require_redis_url())
    waits = durable.min_replicas(settings) > 0
    if waits and settings.redis_wait_timeout_ms >= settings.redis_timeout_s * 1000:
        raise ValueError(
            f"BROKER_REDIS_WAIT_TIMEOUT_MS ({settings.redis_wait_timeout_ms}) must be shorter "
            f"than BROKER_REDIS_TIMEOUT_S ({settings.redis_timeout_s} s): a write waits for "
            "its replicas within the limit of one command"
        )
    keyring = auth.KeyRing.from_settings(settings)
    subscriptions = webhooks.configured(settings)
    link_key = links.secret_key(settings)
    email = mail.configured(settings, links_on=link_key is not None)
    slack_on = slack.configured()
    expiry.rules(settings.expiry)
    escalation.rules(settings.escalation)
    assignment.rules(settings.assignment)
    rules.configured(settings.approval_rules)
    undo.rules(settings.undo)
    telemetry.wanted()  # an OTLP exporter or protocol the broker does not have
    verifier = _oidc(settings)
    if receipts.load(settings).signer is None:
        log.warning(
            "decision receipts are off: answers carry no signed receipt, and agents that "
            "require one (tool_approval's send_email) refuse to act. Set "
            "BROKER_RECEIPT_KEYS (or BROKER_RECEIPT_KEYS_FILE) to a JSON list such as "
            '[{"kid": "2026-01", "private_key": "<PEM or base64url seed>"}]; make a key with %s',
            receipts.HOW_TO_MAKE,
        )
    if process == "api" and keyring.enabled and not keyring.keys and verifier is None:
        raise ValueError(
            "no API keys are configured, and without keys nobody could use the API. "
            "Set BROKER_API_KEYS (or BROKER_API_KEYS_FILE) to a JSON list such as "
            '[{"id": "ops", "key_sha256": "<sha256 hex of the key>", "scopes": ["admin"]}], '
            "set BROKER_OIDC_ISSUER and BROKER_OIDC_AUDIENCE so people sign in, "
            "or set BROKER_AUTH=off to serve without authentication (trusted networks only)."
        )
    if link_key and not settings.dev and "127.0.0.1" in settings.public_url:
        log.warning(
            "action links point at %s; set BROKER_PUBLIC_URL to where people reach the API",
            settings.public_url,
        )
    if settings.retention_s and not 0 < settings.checkpoint_ttl_s <= settings.retention_s:
        log.warning(
            "BROKER_RETENTION_S (%d) is shorter than the checkpoints' retention "
            "(BROKER_CHECKPOINT_TTL_S=%d, 0 keeps them): a thread's checkpoints outlive "
            "its runs, and a key limited to some agents is then no longer kept from "
            "starting runs on another agent's thread",
            settings.retention_s,
            settings.checkpoint_ttl_s,
        )
    return Checked(keyring, subscriptions, link_key, verifier, email, slack_on)


def _oidc(settings: Settings) -> oidc.Verifier | None:
    if settings.oidc_issuer:
        return oidc.Verifier(settings)
    oidc.scopes(settings)
    oidc.group_scopes(settings)
    stray = [
        name
        for name, value in (
            ("BROKER_OIDC_AUDIENCE", settings.oidc_audience),
            ("BROKER_OIDC_GROUP_SCOPES", settings.oidc_group_scopes),
            ("BROKER_OIDC_JWKS_URL", settings.oidc_jwks_url),
            ("BROKER_OIDC_CLIENT_ID", settings.oidc_client_id),
        )
        if value
    ]
    if stray:
        raise ValueError(
            f"{', '.join(stray)} set without BROKER_OIDC_ISSUER: set the provider's issuer "
            "too, or unset them"
        )
    return None
