"""JSON encoding of graph values, and the clock, shared by the API and the worker."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import UTC, datetime
from typing import Any

import orjson


def _default(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    return repr(obj)


_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS


def dumps(value: Any) -> str:
    """Compact JSON; anything JSON cannot hold is converted rather than refused. orjson
    writes it, and the standard library what orjson refuses (integers beyond 64 bits,
    lone surrogates), so no value a graph returns fails to be recorded."""
    try:
        return orjson.dumps(value, default=_default, option=_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, default=_default, separators=(",", ":"), ensure_ascii=False)


def loads(text: str | bytes | None) -> Any:
    if text is None or text == "" or text == b"":
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)  # what the standard library wrote (NaN, lone surrogates)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def iso(ms: int | str | None) -> str | None:
    if ms is None or ms == "":
        return None
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC).isoformat().replace("+00:00", "Z")
