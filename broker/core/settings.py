"""One typed settings object per process, built from the environment."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Configuration shared by the API and the worker.

    Every field reads ``BROKER_<NAME>``; ``redis_url`` also reads plain ``REDIS_URL``.
    """

    model_config = SettingsConfigDict(env_prefix="BROKER_", extra="ignore")

    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "BROKER_REDIS_URL")
    )
    key_prefix: str = "ib"

    # Agents: built-in ones unless a langgraph.json or module:attribute paths are given.
    langgraph_json: str | None = None
    agents: str | None = None
    """Comma-separated ``id=package.module:attribute`` entries."""

    # Limits on what clients send.
    max_answer_bytes: int = 64 * 1024
    max_input_bytes: int = 256 * 1024
    page_limit_max: int = 500
    idempotency_ttl_s: int = 24 * 3600

    # Event streams (approximate MAXLEN of each stream).
    events_maxlen_global: int = 100_000
    events_maxlen_run: int = 10_000

    # Live streams: SSE heartbeat, and how far a subscriber may fall behind.
    sse_heartbeat_s: float = 15.0
    subscriber_queue_max: int = 1000

    # AG-UI: whether RUN_FINISHED carries outcome {type: "interrupt", ...} by default
    # (a request overrides it with forwardedProps.interruptOutcome). Off by default, as
    # in ag-ui-langgraph: AG-UI clients that see the outcome insist on resume[] entries,
    # which would strand frontends that resume through forwardedProps.command.resume.
    agui_interrupt_outcome: bool = False

    # Checkpoints of finished threads expire after this many seconds (0 keeps them).
    checkpoint_ttl_s: int = 7 * 24 * 3600

    # Worker.
    worker_max_jobs: int = 10
    job_timeout_s: int = 300
    job_max_tries: int = 5
    poll_delay_s: float = 0.5
    wake_workers: bool = True
    """Publish on a channel when a job is queued, so idle workers start it at once."""
    thread_lock_ttl_s: int = 60
    thread_lock_wait_s: float = 10.0
    """How long a job waits for a busy thread before it is retried later."""
    run_max_attempts: int = 5
    """Attempts at a run that keeps dying (worker crashes, timeouts) before it fails."""
    reconcile_interval_s: float = 5.0
    reconcile_grace_s: float = 10.0
    worker_heartbeat_s: float = 5.0

    # API.
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = "http://127.0.0.1:8000"
    """Where clients reach the API; action links in webhooks point here."""

    # Answering from anywhere: API keys, action links, expiry, webhooks, audit.
    dev: bool = False
    """Set by ``broker dev``: allows plaintext keys and built-in secrets."""
    auth: Literal["on", "off"] = "on"
    api_keys: str | None = None
    """JSON list of ``{id, key_sha256, scopes, agents?}``; see broker/core/auth.py."""
    api_keys_file: str | None = None
    link_secret: str | None = None
    link_ttl_s: int = 7 * 24 * 3600
    expiry: str | None = None
    """JSON list of ``{agent?, type?, expires_in, default?, on_expire?}`` rules."""
    expiry_interval_s: float = 1.0
    webhooks: str | None = None
    """JSON list of configured subscriptions; more are managed under /admin/webhooks."""
    webhooks_file: str | None = None
    webhook_allow_private: bool = False
    webhook_max_attempts: int = 8
    webhook_backoff_s: float = 2.0
    webhook_backoff_max_s: float = 3600.0
    webhook_timeout_s: float = 10.0
    webhook_log_max: int = 200
    audit_max: int = 1000
    """Entries kept in each interrupt's audit log (the oldest are dropped)."""

    def require_redis_url(self) -> str:
        if not self.redis_url:
            raise RuntimeError(
                "REDIS_URL is not set: point it at a Redis 7+ or Valkey server "
                "(e.g. REDIS_URL=redis://127.0.0.1:6379/0), or use `broker dev`, "
                "which starts an embedded server."
            )
        return self.redis_url


@lru_cache
def get_settings() -> Settings:
    return Settings()
