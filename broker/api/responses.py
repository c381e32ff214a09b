"""JSON responses encoded by orjson, for the routes read most.

A route that returns one of these skips FastAPI's validation and encoding of its return
value; its ``response_model`` still documents the body. orjson writes what the strict
body parser (broker/core/jsonsafe.py) would read back: compact UTF-8, never ``NaN`` or
``Infinity`` (a non-finite float is written as ``null``, as FastAPI's encoder does), and
it refuses what JSON cannot carry everywhere (integers beyond 64 bits, lone surrogates)
with an error instead of writing it.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
