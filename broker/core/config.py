"""The one configuration check every entry point runs before it starts: ``broker api``,
``broker worker``, the FastAPI factory and arq's own ``WorkerSettings`` all call
``check``, so a process refuses unusable configuration at start, not at first use.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from broker.core import auth, connections, durable, expiry, links, webhooks
from broker.core.settings import Settings

log = logging.getLogger("broker.core.config")

Process = Literal["api", "worker"]


@dataclass(frozen=True)
class Checked:
    """What the check built on the way, for the process to use."""

    keyring: auth.KeyRing
    webhooks: dict[str, webhooks.Subscription]
    link_key: bytes | None


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
    expiry.rules(settings.expiry)
    if process == "api" and keyring.enabled and not keyring.keys:
        raise ValueError(
            "no API keys are configured, and without keys nobody could use the API. "
            "Set BROKER_API_KEYS (or BROKER_API_KEYS_FILE) to a JSON list such as "
            '[{"id": "ops", "key_sha256": "<sha256 hex of the key>", "scopes": ["admin"]}], '
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
    return Checked(keyring, subscriptions, link_key)
