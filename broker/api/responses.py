"""JSON responses encoded by orjson, for the routes read most.

A route that returns one of these skips FastAPI's validation and encoding of its return
value; its ``response_model`` still documents the body. orjson writes what the strict
body parser (broker/core/jsonsafe.py) would read back: compact UTF-8, never ``NaN`` or
``Infinity`` (a non-finite float is written as ``null``, as FastAPI's encoder does).
What orjson refuses, a graph may still have put in an interrupt's value (an integer
beyond 64 bits, a lone surrogate): such a body is written by the standard library
instead, with non-ASCII escaped, so one odd value never fails a whole page.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.responses import Response


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except orjson.JSONEncodeError:
            return json.dumps(content, separators=(",", ":")).encode()
