"""The shapes the broker answers with, as types.

Records are ``TypedDict``s: the JSON as the broker sends it, typed for the reader and
the type checker, with nothing converted or dropped (a field a newer broker adds is
still there). A page and an interrupt read with its fingerprint are small dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Required, TypedDict, TypeVar

RunStatus = Literal["queued", "running", "interrupted", "succeeded", "failed", "cancelled"]
InterruptStatus = Literal["pending", "accepted", "resolved", "expired", "cancelled"]
TERMINAL_EVENTS = frozenset({"run.succeeded", "run.failed", "run.cancelled"})
"""The events that end a run's event stream."""


class Agent(TypedDict):
    agent_id: str
    description: str
    source: str


class RunStarted(TypedDict):
    """``POST /runs``: the new run (or, for a repeated ``Idempotency-Key``, the first)."""

    run_id: str
    thread_id: str
    status: RunStatus


class Run(TypedDict, total=False):
    run_id: str
    thread_id: str
    agent_id: str
    status: RunStatus
    input: Any
    metadata: dict[str, Any]
    pending_interrupts: list[str]
    output: Any
    error: Any
    attempts: int
    created_at: str
    updated_at: str


class Resolution(TypedDict, total=False):
    value: Any
    resolved_by: str | None
    resolved_at: str
    channel: str
    key_id: str | None
    comment: str | None
    receipt: str


class Interrupt(TypedDict, total=False):
    id: str
    interrupt_id: str
    run_id: str
    thread_id: str
    agent_id: str
    type: str | None
    kind: str
    value: Any
    response_schema: Any
    status: InterruptStatus
    created_at: str
    updated_at: str
    expires_at: str | None
    expiry: dict[str, Any] | None
    resolution: Resolution | None
    assignees: list[str]
    watchers: list[str]
    fingerprint: str
    escalation: Any
    approval: Any
    undo: Any


class AuditEntry(TypedDict, total=False):
    """One attempt to answer: ``outcome`` is ``accepted`` or the refusal's code."""

    at: str
    actor: str
    key_id: str | None
    person: dict[str, Any] | None
    channel: str
    outcome: str
    payload_sha256: str | None
    comment: str


class BulkResult(TypedDict, total=False):
    interrupt_id: str
    status: int
    interrupt: Interrupt
    error: dict[str, Any]


class BulkOutcome(TypedDict):
    results: list[BulkResult]
    accepted: int
    refused: int
    truncated: bool


class Event(TypedDict, total=False):
    """One run or interrupt event: ``id`` is its stream id, a resume cursor."""

    id: str
    type: str
    ts: int
    run_id: str
    thread_id: str
    agent_id: str
    data: dict[str, Any]


class ErrorBody(TypedDict, total=False):
    """The inside of ``{"error": {...}}``: code and message, and the code's own fields."""

    code: str
    message: str


class ActionLink(TypedDict):
    """One choice's action link, as an ``interrupt.created`` webhook carries it."""

    choice: str
    label: str
    url: str
    expires_at: str


T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list; ``next_cursor`` is None on the last."""

    items: list[T]
    next_cursor: str | None = None


@dataclass(frozen=True)
class Fetched:
    """An interrupt and its ETag: the fingerprint of the question, to send back as
    ``if_match`` so an answer is taken only for the question shown."""

    interrupt: Interrupt
    etag: str | None = None

    @property
    def fingerprint(self) -> str | None:
        return self.etag.strip('"') if self.etag else None


@dataclass(frozen=True)
class LinkAnswer:
    """What using an action link got: the page's status (200 answered; 404 not a link;
    409 already closed; 410 expired or used; 412 the question changed; 422 refused)."""

    status: int
    page: str = field(repr=False)

    @property
    def ok(self) -> bool:
        return self.status == 200


class Webhook(TypedDict, total=False):
    """A webhook subscription, as ``/admin/webhooks`` shows it (never its secret)."""

    id: str
    url: str
    events: list[str]
    agents: list[str] | None
    types: list[str] | None
    enabled: bool
    description: str | None
    created_at: str | None
    source: Literal["config", "api"]


class NewWebhook(Webhook, total=False):
    """A subscription just made: the one answer that shows its ``secret``."""

    secret: str


class Delivery(TypedDict, total=False):
    """One delivery attempt of one event to a subscription."""

    id: str
    event: str
    attempt: int
    at: str
    status_code: int | None
    error: str | None
    duration_ms: int
    outcome: Literal["delivered", "failed", "gave_up", "refused"]
    next_attempt_in_s: float


class Health(TypedDict):
    """``GET /healthz``: the API process answers."""

    status: str


class ReadinessChecks(TypedDict, total=False):
    redis: str
    """``ok``, or ``unreachable: <error>``."""
    workers: int | None
    """Workers with a recent heartbeat (None when Redis did not answer)."""


class Readiness(TypedDict):
    """``GET /readyz``: ``ready`` when Redis answers and a worker is alive."""

    status: Literal["ready", "not_ready"]
    checks: ReadinessChecks


class OidcConfig(TypedDict):
    issuer: str
    client_id: str | None
    audience: str
    scope: str


class AuthConfig(TypedDict):
    """``GET /auth/config``: the OpenID provider people sign in with, or None."""

    oidc: OidcConfig | None


class Jwk(TypedDict):
    """One Ed25519 public key that decision receipts verify against (RFC 8037)."""

    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    x: str
    kid: str
    use: Literal["sig"]
    alg: Literal["EdDSA"]


class JwkSet(TypedDict):
    """``GET /.well-known/jwks.json``: every receipt key; empty while receipts are off."""

    keys: list[Jwk]


class RunAgentInput(TypedDict, total=False):
    """The body of ``POST /agui/{agent_id}``, in the AG-UI protocol's camelCase:
    ``threadId`` and ``messages`` are needed (``runId`` is made when absent).
    ``resume`` entries (``{interruptId, status, payload}``) or
    ``forwardedProps.command.resume`` answer the thread's pending interrupts;
    ``forwardedProps.interruptOutcome`` asks for ``RUN_FINISHED``'s interrupt outcome."""

    threadId: Required[str]
    messages: Required[list[dict[str, Any]]]
    runId: str
    parentRunId: str
    state: Any
    tools: list[dict[str, Any]]
    context: list[dict[str, Any]]
    forwardedProps: dict[str, Any]
    resume: list[dict[str, Any]]


class AguiEvent(TypedDict, total=False):
    """One AG-UI event, as the broker sends it: ``type`` (``RUN_STARTED``,
    ``TEXT_MESSAGE_CONTENT``, ``CUSTOM``, ``RUN_FINISHED``, ``RUN_ERROR``...) and the
    type's own camelCase fields, of which the common ones are typed here."""

    type: str
    threadId: str
    runId: str
    messageId: str
    role: str
    delta: str
    name: str
    value: Any
    snapshot: Any
    messages: list[dict[str, Any]]
    outcome: dict[str, Any]
    metadata: dict[str, Any]
    code: str
    message: str
