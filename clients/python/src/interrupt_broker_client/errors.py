"""The broker's errors as exceptions: one class per family of error codes.

Every error the broker answers has the shape ``{"error": {"code", "message", ...}}``;
the extra fields (``resolution`` on ``already_resolved``, ``fingerprint`` on
``fingerprint_mismatch``, ``known_agents`` on ``agent_not_found``...) are ``details``.
The class is picked by the code's family, so ``except Conflict`` catches every 409
whatever its code, and ``exc.code`` tells them apart.
"""

from __future__ import annotations

from typing import Any

import httpx


class BrokerError(Exception):
    """An error answer of the broker: its HTTP status, code, message and other fields."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: httpx.Headers | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details: dict[str, Any] = details or {}
        self.headers = headers or httpx.Headers()


class InvalidInput(BrokerError):
    """The request is wrong (400, 413, 415, 422): a malformed or too large body, an
    answer its schema refuses, a bad cursor, an idempotency key reused for another body."""


class Unauthorized(BrokerError):
    """401: no API key, or one the broker does not know."""


class Forbidden(BrokerError):
    """403: the key lacks a scope, or the caller may not answer this interrupt
    (``not_assignee``, ``not_eligible``, ``not_your_turn``, ``not_author``)."""


class NotFound(BrokerError):
    """404: no such agent, run, interrupt, thread or webhook (or not one this key sees)."""


class Conflict(BrokerError):
    """409: the state forbids it now: ``already_resolved`` (``details["resolution"]``
    holds the winning answer), ``interrupt_closed``, ``thread_busy``, ``run_finished``,
    ``already_voted``, ``not_held``, ``undo_window_closed``..."""

    @property
    def resolution(self) -> dict[str, Any] | None:
        got = self.details.get("resolution")
        return got if isinstance(got, dict) else None


class Gone(BrokerError):
    """410: an interrupt past its deadline, a record past its retention, a used link."""


class FingerprintMismatch(BrokerError):
    """412: the question changed since it was read; ``fingerprint`` is the current one."""

    @property
    def fingerprint(self) -> str | None:
        got = self.details.get("fingerprint")
        return got if isinstance(got, str) else None


class Unavailable(BrokerError):
    """503: Redis is unavailable or the API process is stopping; retry (with the same
    ``Idempotency-Key`` where the request changes state)."""

    @property
    def retry_after_s(self) -> float | None:
        try:
            return float(self.headers.get("retry-after", ""))
        except ValueError:
            return None


_BY_STATUS: dict[int, type[BrokerError]] = {
    400: InvalidInput,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: InvalidInput,
    409: Conflict,
    410: Gone,
    412: FingerprintMismatch,
    413: InvalidInput,
    415: InvalidInput,
    422: InvalidInput,
    503: Unavailable,
}


def from_response(response: httpx.Response) -> BrokerError:
    """The exception for an error response (its body read), whatever its body is."""
    code, message, details = f"http_{response.status_code}", response.reason_phrase, {}
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        details = {k: v for k, v in error.items() if k not in ("code", "message")}
        code = str(error.get("code", code))
        message = str(error.get("message", message))
    cls = _BY_STATUS.get(response.status_code, BrokerError)
    return cls(response.status_code, code, message, details, response.headers)


def error_for_result(result: dict[str, Any]) -> BrokerError | None:
    """The exception a bulk answer's result stands for; None for an accepted one."""
    status = int(result.get("status", 0))
    if status == 200:
        return None
    error = result.get("error") or {}
    details = {k: v for k, v in error.items() if k not in ("code", "message")}
    cls = _BY_STATUS.get(status, BrokerError)
    return cls(status, str(error.get("code", "")), str(error.get("message", "")), details)


_FRAME_STATUS = {"unauthorized": 401, "forbidden": 403, "invalid_cursor": 400}


def from_frame(frame: dict[str, Any]) -> BrokerError:
    """The exception for a WebSocket error frame that refuses the connection (an unknown
    key, a missing scope, a bad ``after``): the status the same refusal has over HTTP."""
    code = str(frame.get("code", "error"))
    status = _FRAME_STATUS.get(code, 400)
    details = {k: v for k, v in frame.items() if k not in ("type", "code", "message")}
    return _BY_STATUS.get(status, BrokerError)(status, code, str(frame.get("message", "")), details)
