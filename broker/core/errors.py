"""The broker's exceptions, named for what the caller does next, and their HTTP mapping."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from redis.exceptions import RedisError


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


class RedisUnavailable(BrokerError, RedisError):
    """Redis did not take the change durably: no primary, a demoted one, or too few
    replicas confirmed it in time. The change may or may not have been kept. A
    ``RedisError`` too, so the worker treats it as infrastructure (the job is retried)."""

    status_code = 503
    code = "redis_unavailable"


REDIS_UNAVAILABLE_MESSAGE = (
    "Redis is unavailable (a failover may be under way); the request may or may not "
    "have taken effect. Retry shortly, with the same Idempotency-Key where it changes state."
)


def validation_message(exc: ValidationError) -> str:
    """The first problem pydantic found, as ``field.path: message``."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return f"{where}: {first['msg']}"
