"""What a log line is about: the run, thread, agent, interrupt and job ids known where it
is written, and the trace and span it belongs to.

A request (broker/api/observe.py) and a job (worker/_arq.py) each begin a fresh set of
ids; code that learns an id adds it with ``bind`` (``broker.core.telemetry.bind`` also
puts it on the current span). The set is one dict shared by every task the request or
job starts, so a line written after the handler returns (uvicorn's access line, arq's
end of job) still carries what the handler learnt. ``ContextFilter`` copies the ids onto
each record, where ``BROKER_LOG_FORMAT=json`` writes them as fields.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from contextvars import ContextVar, Token
from typing import Any

from opentelemetry import trace

FIELDS = ("run_id", "thread_id", "agent_id", "interrupt_id", "job_id")
# uvicorn's copy of its message with terminal colours: not a field of a JSON line
DROPPED = ("color_message",)

_ids: ContextVar[dict[str, Any] | None] = ContextVar("broker_log_ids", default=None)


def begin(scope: MutableMapping[str, Any] | None = None) -> Token[dict[str, Any] | None]:
    """A fresh set of ids for a request or a job; ``scope``, a request's ASGI scope,
    whose path parameters (``run_id``, ``interrupt_id``, ``thread_id``) count once the
    router has matched them."""
    return _ids.set({"_scope": scope} if scope is not None else {})


def end(token: Token[dict[str, Any] | None]) -> None:
    _ids.reset(token)


def bind(**ids: Any) -> None:
    """Adds ids to the current set (None values are left out)."""
    held = _ids.get()
    if held is None:
        held = {}
        _ids.set(held)
    for name, value in ids.items():
        if value is not None:
            held[name] = str(value)


def current() -> dict[str, str]:
    """The ids known here: those bound, then the request's path parameters."""
    held = _ids.get()
    if not held:
        return {}
    scope = held.get("_scope")
    params = (scope.get("path_params") or {}) if scope is not None else {}
    out: dict[str, str] = {}
    for name in FIELDS:
        value = held.get(name) or params.get(name)
        if value:
            out[name] = str(value)
    return out


class ContextFilter(logging.Filter):
    """Copies the ids of ``current()`` and, while a span is current, its trace and span
    ids onto every record a handler writes. Configured only for JSON lines, so the
    process's warnings go through logging too (they would be plain text on stderr)."""

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        logging.captureWarnings(True)

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in current().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            record.trace_id = format(span.trace_id, "032x")
            record.span_id = format(span.span_id, "016x")
        return True


def json_formatter() -> dict[str, Any]:
    """The dictConfig entry of the JSON formatter: one object per line, with the time
    (ISO 8601, UTC), level, logger and message, then every id the record carries."""
    from pythonjsonlogger.core import RESERVED_ATTRS

    return {
        "()": "pythonjsonlogger.json.JsonFormatter",
        "fmt": "%(levelname)s %(name)s %(message)s",
        "timestamp": "time",
        "rename_fields": {"levelname": "level", "name": "logger"},
        "reserved_attrs": [*RESERVED_ATTRS, *DROPPED],
    }
