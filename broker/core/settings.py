"""One typed settings object per process, built from the environment.

Each field is checked where it is read (types, bounds, JSON lists); what needs more
than one field, or a file, is checked by ``broker.core.config.check``, which every
entry point calls before it starts.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AliasChoices, Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# A JSON list read from one variable; parsed by the validator below, not by the source,
# so a bad value gets the message that names the variable.
JsonList = Annotated[list[Any] | None, NoDecode]
Positive = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]
ParsedT = TypeVar("ParsedT")


def parsed_once(
    parse: Callable[[list[Any] | None], ParsedT],
) -> Callable[[list[Any] | None], ParsedT]:
    """``parse`` of a JSON list setting, run once per list: the worker applies the
    expiry and assignment rules to every new interrupt, and the settings hold the same
    list for the life of the process (it is never changed in place)."""
    memo: dict[int, tuple[list[Any], ParsedT]] = {}

    @functools.wraps(parse)
    def cached(config: list[Any] | None) -> ParsedT:
        if config is None:
            return parse(config)
        hit = memo.get(id(config))
        if hit is not None and hit[0] is config:
            return hit[1]
        parsed = parse(config)
        if len(memo) >= 16:
            memo.clear()
        memo[id(config)] = (config, parsed)
        return parsed

    return cached


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
    # Logs and traces. Traces follow the standard OTEL_* variables (broker/core/telemetry.py).
    log_format: Literal["text", "json"] = "text"
    """``json``: every log line of the API and the worker is one JSON object, with the run,
    thread, agent, interrupt and job ids it is about (broker/core/logs.py)."""
    public_url: str = Field(default="http://127.0.0.1:8000", pattern=r"^https?://[^\s/]+")
    """Where clients reach the API; action links in webhooks point here."""
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Origins whose pages may call the API from a browser (Agent Inbox, a frontend on
    another host): comma-separated, such as ``https://inbox.example.com``, or ``*``."""

    # Metrics.
    worker_metrics_port: Annotated[int, Field(ge=0, lt=65536)] = 0
    """Port on which a worker serves its own Prometheus metrics (0: not served). Each
    worker on one host needs a port of its own."""
    worker_metrics_host: str = "127.0.0.1"
    """Address the worker's metrics server binds (``0.0.0.0``: every interface)."""

    # Answering from anywhere: API keys, action links, expiry, webhooks, audit.
    dev: bool = False
    """Set by ``broker dev``: allows plaintext keys and built-in secrets."""
    auth: Literal["on", "off"] = "on"
    api_keys: JsonList = None
    """JSON list of ``{id, key_sha256, scopes, agents?}``; see broker/core/auth.py."""
    api_keys_file: str | None = None
    link_secret: str | None = None
    link_ttl_s: PositiveInt = 7 * 24 * 3600
    # Email.
    smtp_host: str | None = None
    """SMTP server notification emails go through (broker/core/mail.py); unset: no email."""
    smtp_port: Annotated[int, Field(gt=0, lt=65536)] = 587
    smtp_tls: Literal["off", "starttls", "tls"] = "starttls"
    """``starttls``: upgrade a plain connection (required); ``tls``: TLS from the start."""
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_password_file: str | None = None
    smtp_timeout_s: Positive = 30.0
    email_from: str | None = None
    email_routes: JsonList = None
    """JSON list of ``{agent?, type?, to?, assignees?}`` rules: who is emailed the links."""
    email_max_attempts: PositiveInt = 8
    email_backoff_s: Positive = 10.0
    expiry: JsonList = None
    """JSON list of ``{agent?, type?, expires_in, default?, on_expire?}`` rules."""
    expiry_interval_s: Positive = 1.0
    escalation: JsonList = None
    """JSON list of ``{agent?, type?, escalation: [steps]}`` rules; see
    broker/core/escalation.py."""
    assignment: JsonList = None
    """JSON list of ``{agent?, type?, assignees, watchers?}`` rules; see
    broker/core/assignment.py."""
    approval_rules: JsonList = None
    """JSON list of ``{agent?, type?, approval}`` decision rules; see
    broker/core/rules.py."""
    undo: JsonList = None
    """JSON list of ``{agent?, type?, undo_s}`` rules: the undo window of an answer; see
    broker/core/undo.py."""
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
    receipt_keys: JsonList = None
    """JSON list of ``{kid, private_key, active?}`` Ed25519 keys that sign decision
    receipts (broker/core/receipts.py); unset outside ``broker dev``: receipts are off."""
    receipt_keys_file: str | None = None

    # People: bearer tokens (JWTs) from an OpenID provider (broker/core/oidc.py).
    oidc_issuer: str | None = None
    """The provider's issuer URL, exactly as its tokens' ``iss`` says it."""
    oidc_audience: str | None = None
    """What a token's ``aud`` must contain: the audience the provider gives the broker."""
    oidc_jwks_url: str | None = None
    """Where the provider's signing keys are; unset: its discovery document's jwks_uri."""
    oidc_groups_claim: str = Field(default="groups", min_length=1, max_length=200)
    """The claim listing a person's groups (a list, or a space-separated string); a dotted
    path such as ``realm_access.roles`` reads a nested claim."""
    oidc_scopes: JsonList = None
    """JSON list of the scopes every person gets; unset: read and resolve."""
    oidc_group_scopes: Annotated[dict[str, Any] | None, NoDecode] = None
    """JSON object ``{"<group>": [scopes...]}``: more scopes for the members of a group
    (never admin)."""
    oidc_client_id: str | None = None
    """The dashboard's public client at the provider; set, the dashboard signs people in."""
    oidc_dashboard_scope: str = "openid email profile groups"
    """The scope the dashboard asks the provider for."""
    oidc_trust_unverified_email: bool = False
    """Take a token's ``email`` without ``email_verified: true``: only for a provider
    that issues verified emails alone (an email names an assignee, ``user:<email>``)."""
    oidc_leeway_s: Annotated[float, Field(ge=0, le=300)] = 30.0
    """Clock skew allowed when checking a token's exp, nbf and iat."""
    oidc_timeout_s: Positive = 5.0
    """Bound on each request to the provider (discovery, keys)."""

    @field_validator(
        "api_keys",
        "expiry",
        "escalation",
        "assignment",
        "approval_rules",
        "undo",
        "webhooks",
        "email_routes",
        "oidc_scopes",
        "receipt_keys",
        mode="before",
    )
    @classmethod
    def _json_list(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            return json_list(value, f"BROKER_{(info.field_name or '').upper()}") if value else None
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        origins = [o.strip().rstrip("/") for o in value.split(",") if o.strip()]
        for o in origins:
            if o != "*" and not re.fullmatch(r"https?://[^\s/]+", o):
                raise ValueError(
                    f"BROKER_CORS_ORIGINS: {o!r} is not an origin (scheme://host[:port]) or *"
                )
        return origins

    @field_validator("oidc_group_scopes", mode="before")
    @classmethod
    def _json_object(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str) and value:
            where = f"BROKER_{(info.field_name or '').upper()}"
            try:
                data = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where} is not valid JSON: {exc}") from exc
            if not isinstance(data, dict):
                raise ValueError(f"{where} must be a JSON object")
            return data
        return value or None

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
