"""Reading a JSON request body: content type, size limit, parse, then the model."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from broker.core import errors
from broker.core.errors import validation_message

M = TypeVar("M", bound=BaseModel)


async def read_json(request: Request, model: type[M], limit: int) -> M:
    """Parses the body into ``model``; each way it can be wrong has its own error."""
    data = await read_json_object(request, limit)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise errors.InvalidRequest(validation_message(exc)) from exc


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object: checks content type, size and syntax."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise errors.UnsupportedMediaType(
            f"send the body as JSON with Content-Type: application/json (got {ctype or 'none'!r})"
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise errors.PayloadTooLarge(f"body is {declared} bytes; the limit is {limit}", limit=limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise errors.PayloadTooLarge(f"body exceeds the limit of {limit} bytes", limit=limit)
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise errors.InvalidJSON(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise errors.InvalidRequest("body must be a JSON object")
    return data
