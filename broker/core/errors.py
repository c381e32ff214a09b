"""The broker's exceptions, named for what the caller does next, and their HTTP mapping."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from redis import exceptions as redis_errors


class BrokerError(Exception):
    """Base class: every subclass maps to one HTTP status and error code."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.details}}


class InvalidJSON(BrokerError):
    status_code = 400
    code = "invalid_json"


class InvalidJSONValue(BrokerError):
    """Valid JSON holding what the broker does not take: NaN or Infinity, an integer
    outside 64 bits, a lone surrogate, or nesting past the limit (``path`` says where)."""

    status_code = 422
    code = "invalid_json_value"


class UnsupportedMediaType(BrokerError):
    status_code = 415
    code = "unsupported_media_type"


class PayloadTooLarge(BrokerError):
    status_code = 413
    code = "payload_too_large"


class InvalidRequest(BrokerError):
    status_code = 422
    code = "invalid_request"


class InvalidAnswer(BrokerError):
    status_code = 422
    code = "invalid_answer"


class IdempotencyKeyReused(BrokerError):
    status_code = 422
    code = "idempotency_key_reused"


class AgentNotFound(BrokerError):
    status_code = 404
    code = "agent_not_found"


class RunNotFound(BrokerError):
    status_code = 404
    code = "run_not_found"


class InterruptNotFound(BrokerError):
    status_code = 404
    code = "interrupt_not_found"


class RunRecordExpired(RunNotFound):
    """The run existed; it ended and its record expired after the retention period."""

    status_code = 410
    code = "expired_record"

    def __init__(self, message: str, *, agent_id: str) -> None:
        super().__init__(message)
        self.agent_id = agent_id  # for visibility checks, never in the body


class InterruptRecordExpired(InterruptNotFound):
    """The interrupt existed; its run ended and its record expired after retention."""

    status_code = 410
    code = "expired_record"

    def __init__(self, message: str, *, agent_id: str) -> None:
        super().__init__(message)
        self.agent_id = agent_id


class AlreadyResolved(BrokerError):
    status_code = 409
    code = "already_resolved"


class InterruptClosed(BrokerError):
    """The interrupt was cancelled (its run ended) before an answer arrived."""

    status_code = 409
    code = "interrupt_closed"


class InterruptExpired(BrokerError):
    status_code = 410
    code = "interrupt_expired"


class ThreadBusy(BrokerError):
    status_code = 409
    code = "thread_busy"


class RunFinished(BrokerError):
    status_code = 409
    code = "run_finished"


class InvalidCursor(BrokerError):
    status_code = 400
    code = "invalid_cursor"


class Unauthorized(BrokerError):
    """No API key, or one that matches no configured key."""

    status_code = 401
    code = "unauthorized"


class Forbidden(BrokerError):
    """The key is valid but lacks the scope this needs."""

    status_code = 403
    code = "forbidden"


class NotAuthor(BrokerError):
    """Only the one who gave a held answer (or a key answering on behalf of people)
    withdraws it."""

    status_code = 403
    code = "not_author"


class NotHeld(BrokerError):
    """Nothing to withdraw: the interrupt holds no answer in an undo window."""

    status_code = 409
    code = "not_held"


class UndoWindowClosed(BrokerError):
    """The held answer's undo window has closed: the run resumes with it."""

    status_code = 409
    code = "undo_window_closed"


class NotAssignee(BrokerError):
    """The interrupt names who may answer it, and the caller is not among them."""

    status_code = 403
    code = "not_assignee"


class NotEligible(BrokerError):
    """The interrupt is decided by votes (broker/core/rules.py) of others."""

    status_code = 403
    code = "not_eligible"


class NotYourTurn(BrokerError):
    """A chain's vote by someone other than its current step (broker/core/rules.py)."""

    status_code = 403
    code = "not_your_turn"


class AlreadyVoted(BrokerError):
    """This person's vote on the interrupt is already recorded; each votes once."""

    status_code = 409
    code = "already_voted"


class FingerprintMismatch(BrokerError):
    """The answer was given to another version of the question than the interrupt now
    asks (``If-Match``); ``fingerprint`` is the current one. Read it again, then answer."""

    status_code = 412
    code = "fingerprint_mismatch"


class SlackOff(BrokerError):
    """Slack is not configured (broker/core/slack.py)."""

    status_code = 404
    code = "slack_off"


class LinkUsed(BrokerError):
    """An action link was already used once."""

    status_code = 410
    code = "link_used"


class WebhookNotFound(BrokerError):
    status_code = 404
    code = "webhook_not_found"


class WebhookReadOnly(BrokerError):
    """A subscription from the configuration; change the configuration instead."""

    status_code = 409
    code = "webhook_read_only"


class UnsafeWebhookUrl(BrokerError):
    status_code = 422
    code = "unsafe_webhook_url"


class ThreadNotFound(BrokerError):
    """The thread belongs to runs of agents this API key may not see."""

    status_code = 404
    code = "thread_not_found"


class ThreadAgentMismatch(BrokerError):
    """The thread belongs to another agent (one the key may see): a thread's checkpoints
    hold one graph's state, so each thread stays with the agent that started it."""

    status_code = 409
    code = "thread_agent_mismatch"


class RedisUnavailable(BrokerError, redis_errors.RedisError):
    """Redis cannot be reached, is full, read-only, loading or stalled, or did not take a
    change durably (too few replicas confirmed it in time, so it may or may not have been
    kept): retry later. A ``RedisError`` too, so the worker treats it as infrastructure
    (the job is retried)."""

    status_code = 503
    code = "redis_unavailable"


class ShuttingDown(BrokerError):
    """This API process is stopping: reconnect (to another replica, or after restart)."""

    status_code = 503
    code = "shutting_down"


# Seconds a client is told to wait (``Retry-After``, SSE ``retry:``) before trying again.
RETRY_AFTER_S = 2

# Replies of a server that works but cannot take this command now.
_UNAVAILABLE_REPLIES = (
    "OOM ",
    "LOADING ",
    "READONLY ",
    "MASTERDOWN ",
    "TRYAGAIN ",
    "NOREPLICAS ",
)
_OOM_TEXT = "used memory > 'maxmemory'"


def unavailable(exc: BaseException) -> BrokerError | None:
    """The 503 error that ``exc`` amounts to when it is an outage (not a bug), else None.

    An outage is Redis being unreachable, timing out, loading its data, read-only (a
    demoted primary), out of memory (``maxmemory`` with ``noeviction``), or this
    process shutting down: the same request succeeds later.
    """
    if isinstance(exc, RedisUnavailable | ShuttingDown):
        return exc
    if isinstance(
        exc,
        redis_errors.ConnectionError
        | redis_errors.TimeoutError
        | redis_errors.OutOfMemoryError
        | redis_errors.ReadOnlyError,
    ):
        return RedisUnavailable(f"Redis is unavailable ({type(exc).__name__}); retry later")
    if isinstance(exc, redis_errors.WatchError) and "ConnectionError" in str(exc):
        # redis-py's word for a connection lost while a WATCH was on
        return RedisUnavailable("Redis is unavailable (connection lost); retry later")
    if isinstance(exc, redis_errors.ResponseError):
        # inside a script or a transaction the reply arrives as a plain error
        text = str(exc)
        if _OOM_TEXT in text:
            return RedisUnavailable("Redis is out of memory (OOM); retry later")
        for reply in _UNAVAILABLE_REPLIES:
            if reply in text or text.startswith(reply.strip()):
                return RedisUnavailable(f"Redis is unavailable ({reply.strip()}); retry later")
    return None


def validation_message(exc: ValidationError) -> str:
    """The first problem pydantic found, as ``field.path: message``."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return f"{where}: {first['msg']}"
