"""Reading a JSON request body: content type, size limit, strict parse, then the model.

Every route that takes a JSON body reads it here, so each way a body can be wrong has
one answer everywhere: 415 not JSON, 413 too large, 400 not parseable, 422 a value the
broker does not take (``invalid_json_value``, see broker/core/jsonsafe.py) or a body
that does not fit the route's model (``invalid_request``).
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from broker.core import errors, jsonsafe
from broker.core.errors import validation_message

M = TypeVar("M", bound=BaseModel)

__all__ = ["parse_json", "read_json", "read_json_object", "validation_message"]


async def read_json(request: Request, model: type[M], limit: int) -> M:
    """Parses the body into ``model``; each way it can be wrong has its own error."""
    data = await read_json_object(request, limit)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise errors.InvalidRequest(validation_message(exc)) from exc


def parse_json(raw: bytes | str, max_depth: int) -> Any:
    """A strict parse of JSON text, with the broker's errors: 400 for text that is not
    JSON, 422 ``invalid_json_value`` (with the ``path``) for a value the broker refuses."""
    try:
        return jsonsafe.parse(raw, max_depth)
    except jsonsafe.UnsafeJSON as exc:
        raise errors.InvalidJSONValue(f"body is not accepted: {exc}", path=exc.path) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise errors.InvalidJSON(f"body is not valid JSON: {exc}") from exc


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object: checks content type, size, syntax and values."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise errors.UnsupportedMediaType(
            f"send the body as JSON with Content-Type: application/json (got {ctype or 'none'!r})"
        )
    declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared[:20]) > limit:
        raise errors.PayloadTooLarge(f"body is {declared} bytes; the limit is {limit}", limit=limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise errors.PayloadTooLarge(f"body exceeds the limit of {limit} bytes", limit=limit)
        chunks.append(chunk)
    data = parse_json(b"".join(chunks), request.app.state.settings.max_json_depth)
    if not isinstance(data, dict):
        raise errors.InvalidRequest("body must be a JSON object")
    return data
