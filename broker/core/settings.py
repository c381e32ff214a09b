"""One typed settings object per process, built from the environment.

Each field is checked where it is read (types, bounds, JSON lists); what needs more
than one field, or a file, is checked by ``broker.core.config.check``, which every
entry point calls before it starts.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# A JSON list read from one variable; parsed by the validator below, not by the source,
# so a bad value gets the message that names the variable.
JsonList = Annotated[list[Any] | None, NoDecode]
Positive = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]


def json_list(text: str, where: str) -> list[Any]:
    """The JSON list in ``text`` (a setting or the file it names); ValueError says why not."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where} is not valid JSON: {exc}") from exc
    if not isinstance(data, list):
        raise ValueError(f"{where} must be a JSON list")
    return data


class Settings(BaseSettings):
    """Configuration shared by the API and the worker.

    Every field reads ``BROKER_<NAME>``; ``redis_url`` also reads plain ``REDIS_URL``.
    """

    model_config = SettingsConfigDict(env_prefix="BROKER_", extra="ignore")

    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "BROKER_REDIS_URL")
    )
    key_prefix: str = Field(default="ib", pattern=r"^[A-Za-z0-9._:\-]{1,64}$")
    # Connections (broker/core/connections.py): every command and connect is bounded, so
    # a stalled server becomes an error within seconds rather than a hang.
    redis_timeout_s: Positive = 5.0
    redis_connect_timeout_s: Positive = 2.0
    redis_health_check_s: Annotated[float, Field(ge=0)] = 15.0
    """Idle connections are PINGed before reuse after this long (0: never)."""
    redis_ca_file: str | None = None
    """CA bundle that a ``rediss://`` server's certificate is verified against."""
    redis_sentinel_password: str | None = None
    """Password of the sentinels themselves, when they need one."""
    # Durability (broker/core/durable.py): a change a client could see as done is
    # acknowledged only once this many replicas have it (WAIT). Unset: 1 under a
    # Sentinel URL, 0 otherwise.
    redis_min_replicas: Annotated[int, Field(ge=0)] | None = None
    redis_wait_timeout_ms: PositiveInt = 1000
    """How long a write waits for its replicas before the caller gets a 503."""
    redis_replica_memory_s: Annotated[float, Field(ge=0)] = 10.0
    """A write waits for every replica the primary had online this recently (0: only
    for ``redis_min_replicas``)."""
    redis_sentinel_poll_s: Positive = 0.5
    """How often each process asks the sentinels which node is the primary."""

    # Agents: built-in ones unless a langgraph.json or module:attribute paths are given.
    langgraph_json: str | None = None
    agents: str | None = None
    """Comma-separated ``id=package.module:attribute`` entries."""

    # Limits on what clients send.
    max_answer_bytes: PositiveInt = 64 * 1024
    max_input_bytes: PositiveInt = 256 * 1024
    page_limit_max: PositiveInt = 500
    max_json_depth: Annotated[int, Field(gt=0, le=128)] = 64
    """Deepest nesting of objects and arrays a body may have (see broker/core/jsonsafe.py);
    at most 128, so every encoder and validator the value later meets handles it."""
    idempotency_ttl_s: PositiveInt = 24 * 3600

    # Event streams (approximate MAXLEN of each stream).
    events_maxlen_global: PositiveInt = 100_000
    events_maxlen_run: PositiveInt = 10_000

    # Live streams: SSE heartbeat, and how far a subscriber may fall behind.
    sse_heartbeat_s: Positive = 15.0
    subscriber_queue_max: PositiveInt = 1000

    # AG-UI: whether RUN_FINISHED carries outcome {type: "interrupt", ...} by default
    # (a request overrides it with forwardedProps.interruptOutcome). Off by default, as
    # in ag-ui-langgraph: AG-UI clients that see the outcome insist on resume[] entries,
    # which would strand frontends that resume through forwardedProps.command.resume.
    agui_interrupt_outcome: bool = False

    # Checkpoints of finished threads expire after this many seconds (0 keeps them).
    checkpoint_ttl_s: Annotated[int, Field(ge=0)] = 7 * 24 * 3600

    # Retention: an ended run, its interrupts, their audit logs and its event stream
    # expire this long after the run ends (0 keeps them). A tombstone then says for
    # tombstone_s more that the record existed (reads answer 410, not 404).
    retention_s: Annotated[int, Field(ge=0)] = 7 * 24 * 3600
    tombstone_s: Annotated[int, Field(ge=0)] = 30 * 24 * 3600
    retention_sweep_interval_s: Positive = 60.0
    """How often a worker drops index entries of expired runs and backfills old ones."""

    # Worker.
    worker_max_jobs: PositiveInt = 10
    job_timeout_s: PositiveInt = 300
    job_max_tries: PositiveInt = 5
    poll_delay_s: Positive = 0.5
    wake_workers: bool = True
    """Publish on a channel when a job is queued, so idle workers start it at once."""
    lease_ttl_s: Positive = 10.0
    """Life of a thread lease; its holder renews it every third of it. A lease that
    lapses, or whose holder's heartbeat is stale, is handed on (worker/handover.py)."""
    lease_wait_s: Positive = 10.0
    """How long a job waits for a busy thread before it is retried later."""
    run_max_attempts: PositiveInt = 5
    """Attempts at a run that keeps dying (worker crashes, timeouts) before it fails."""
    checkpoint_durability: Literal["exit", "sync"] = "exit"
    """When an attempt writes its checkpoint: ``exit``, once, where the graph stops (an
    interrupt, its end, an error); ``sync``, after every step as well, so an attempt
    that dies mid-way continues from its last step rather than from where it began."""
    reconcile_interval_s: Positive = 5.0
    reconcile_grace_s: Positive = 10.0
    worker_heartbeat_s: Positive = 5.0
    """A worker whose heartbeat is older than three of these is dead: its leases are
    handed on at once."""
    drain_grace_s: PositiveInt = 20
    """On SIGTERM, how long a worker lets its running attempts finish (then hands them
    back to the queue), and how long the API lets in-flight requests finish."""

    # API.
    host: str = "127.0.0.1"
    port: Annotated[int, Field(gt=0, lt=65536)] = 8000
    public_url: str = Field(default="http://127.0.0.1:8000", pattern=r"^https?://[^\s/]+")
    """Where clients reach the API; action links in webhooks point here."""

    # Answering from anywhere: API keys, action links, expiry, webhooks, audit.
    dev: bool = False
    """Set by ``broker dev``: allows plaintext keys and built-in secrets."""
    auth: Literal["on", "off"] = "on"
    api_keys: JsonList = None
    """JSON list of ``{id, key_sha256, scopes, agents?}``; see broker/core/auth.py."""
    api_keys_file: str | None = None
    link_secret: str | None = None
    link_ttl_s: PositiveInt = 7 * 24 * 3600
    expiry: JsonList = None
    """JSON list of ``{agent?, type?, expires_in, default?, on_expire?}`` rules."""
    expiry_interval_s: Positive = 1.0
    webhooks: JsonList = None
    """JSON list of configured subscriptions; more are managed under /admin/webhooks."""
    webhooks_file: str | None = None
    webhook_allow_private: bool = False
    webhook_max_attempts: PositiveInt = 8
    webhook_backoff_s: Positive = 2.0
    webhook_backoff_max_s: Positive = 3600.0
    webhook_timeout_s: Positive = 10.0
    webhook_log_max: PositiveInt = 200
    audit_max: PositiveInt = 1000
    """Entries kept in each interrupt's audit log (the oldest are dropped)."""

    @field_validator("api_keys", "expiry", "webhooks", mode="before")
    @classmethod
    def _json_list(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            return json_list(value, f"BROKER_{(info.field_name or '').upper()}") if value else None
        return value

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
