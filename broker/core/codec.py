"""JSON encoding of graph values, and the clock, shared by the API and the worker."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import UTC, datetime
from typing import Any


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


def dumps(value: Any) -> str:
    """Compact JSON; anything JSON cannot hold is converted rather than refused."""
    return json.dumps(value, default=_default, separators=(",", ":"), ensure_ascii=False)


def loads(text: str | None) -> Any:
    if text is None or text == "":
        return None
    return json.loads(text)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def iso(ms: int | str | None) -> str | None:
    if ms is None or ms == "":
        return None
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC).isoformat().replace("+00:00", "Z")
