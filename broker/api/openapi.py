"""The OpenAPI document: the error shape, request bodies, and security as the gate applies it.

Routes declare their error responses with ``error_responses(...)`` (one ``Error`` schema) and
their JSON bodies with ``json_body(Model)``: the body is still read by hand (content type,
size limit, syntax, then the model), so the document names the model the handler
validates against. ``finish`` then makes the document match the running process: the auth
gate's open paths need no key, every other path takes one (401) unless auth is off, and
FastAPI's own validation-error shape is replaced by the broker's.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field

from broker.api.gate import QUERY_KEY_HTTP, is_open
from broker.core import errors as e
from broker.core.store import CURSOR_PATTERN

REF = "#/components/schemas/{model}"
ERROR_REF = {"$ref": REF.format(model="Error")}


class ErrorDetail(BaseModel):
    """What went wrong: a stable ``code``, a sentence, and details some codes carry."""

    model_config = ConfigDict(extra="allow", title="ErrorDetail")

    code: str = Field(description="Stable, machine-readable: `interrupt_not_found`, …")
    message: str = Field(description="For people: what was wrong and what to do.")


class Error(BaseModel):
    """Every error response: ``{"error": {"code", "message", …}}``."""

    error: ErrorDetail


# Documented, not enforced by FastAPI: the store checks the cursor (400 invalid_cursor).
Cursor = Annotated[
    str | None,
    Query(
        description="`next_cursor` from the previous page; empty or absent: the first page",
        json_schema_extra={"pattern": CURSOR_PATTERN},
    ),
]
EVENT_ID_PATTERN = r"^([0-9]{1,19}(-[0-9]{1,19})?)?$"
"""An event id (``ms-seq``, or ``ms``; empty: from the start): each part fits 64 bits."""

RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer", "minimum": 0},
    }
}

# Errors by group, for routes to combine.
BODY: tuple[type[e.BrokerError], ...] = (
    e.InvalidJSON,
    e.PayloadTooLarge,
    e.UnsupportedMediaType,
    e.InvalidRequest,
)
"""A JSON body read by broker/api/body.py: 400, 413, 415, 422."""
QUERY = (e.InvalidRequest,)
"""Query or header parameters FastAPI validates (bounds, enums): 422 ``invalid_request``."""
SCOPE = (e.Forbidden,)
"""A key without the route's scope: 403 (only while auth is on)."""
REDIS = 503
"""Redis did not answer: 503 ``redis_unavailable`` with Retry-After."""


def error_responses(*raised: type[e.BrokerError] | int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status with the Error schema and the codes it has."""
    codes: dict[int, list[str]] = defaultdict(list)
    for err in raised:
        if err == REDIS:
            codes[503].append("redis_unavailable")
            continue
        assert not isinstance(err, int), err
        if err.code not in codes[err.status_code]:
            codes[err.status_code].append(err.code)
    out: dict[int | str, dict[str, Any]] = {}
    for status, names in sorted(codes.items()):
        out[status] = {
            "description": "error.code: " + ", ".join(f"`{n}`" for n in names),
            # JSON whatever the route's own response class (action links answer HTML)
            "content": {"application/json": {"schema": ERROR_REF}},
        }
        if status == 503:
            out[status]["headers"] = RETRY_AFTER
    return out


_BODIES: dict[str, type[BaseModel]] = {}
"""Models named by ``json_body``, added to the components by ``finish``."""
_ALIASED: set[str] = set()


def json_body(model: type[BaseModel], *, by_alias: bool = False) -> dict[str, Any]:
    """``openapi_extra=`` declaring a required JSON body validated against ``model``."""
    _BODIES[model.__name__] = model
    if by_alias:
        _ALIASED.add(model.__name__)
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}},
        }
    }


def sse(description: str, *, named: bool) -> dict[str, Any]:
    """A 200 of Server-Sent Events; each event's ``data`` is one JSON document."""
    fields = ["id", "event", "data"] if named else ["data"]
    props = {name: {"type": "string"} for name in fields}
    props["data"]["contentMediaType"] = "application/json"
    item = {"type": "object", "required": fields, "properties": props}
    return {"description": description, "content": {"text/event-stream": {"itemSchema": item}}}


def form_body(fields: dict[str, str]) -> dict[str, Any]:
    """``openapi_extra=`` declaring an optional urlencoded form of string fields."""
    props = {name: {"type": "string", "description": text} for name, text in fields.items()}
    schema = {"type": "object", "properties": props}
    return {
        "requestBody": {
            "required": False,
            "content": {"application/x-www-form-urlencoded": {"schema": schema}},
        }
    }


SECURITY_SCHEMES = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key, or a person's access token (a JWT) from the configured "
        "OpenID provider.",
    },
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "apiKeyQuery": {
        "type": "apiKey",
        "in": "query",
        "name": "api_key",
        "description": "For EventSource, which cannot send headers.",
    },
}
UNAUTHORIZED = {
    "description": "error.code: `unauthorized` (no API key, one that matches none, or a "
    "person's token that does not verify)",
    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    "content": {"application/json": {"schema": ERROR_REF}},
}
METHOD_NOT_ALLOWED = {
    "description": "Any method a path does not declare; `Allow` lists those it does. "
    "error.code: `method_not_allowed`",
    "headers": {"Allow": {"required": True, "schema": {"type": "string"}}},
    "content": {"application/json": {"schema": ERROR_REF}},
}


def finish(doc: dict[str, Any], *, auth_on: bool) -> dict[str, Any]:
    """The generated document, made true for this process (see the module docstring)."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    models: dict[str, type[BaseModel]] = {"Error": Error, **_BODIES}
    for name, model in models.items():
        body = model.model_json_schema(
            ref_template=REF, by_alias=name in _ALIASED, mode="validation"
        )
        schemas.update(body.pop("$defs", {}))
        schemas[name] = body
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    _require_tags(schemas)
    doc["components"]["responses"] = {"MethodNotAllowed": METHOD_NOT_ALLOWED}
    doc["components"].pop("securitySchemes", None)
    if auth_on:
        doc["components"]["securitySchemes"] = SECURITY_SCHEMES
    for path, operations in doc.get("paths", {}).items():
        for operation in operations.values():
            responses = operation["responses"]
            # FastAPI's own 422 (a route declares its 422 when its parameters can fail)
            if "HTTPValidationError" in str(responses.get("422", "")):
                del responses["422"]
            operation.pop("security", None)
            if not auth_on or is_open(path):
                responses.pop("401", None)
                responses.pop("403", None)
                if is_open(path):
                    operation["security"] = []
                continue
            schemes = ["bearer", "apiKey"]
            if QUERY_KEY_HTTP.match(path.replace("{", "").replace("}", "")):
                schemes.append("apiKeyQuery")
            operation["security"] = [{name: []} for name in schemes]
            responses["401"] = UNAUTHORIZED
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            operation["responses"] = dict(sorted(operation["responses"].items()))
            for parameter in operation.get("parameters", []):
                parameter["schema"] = _not_null(parameter["schema"])
    return doc


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter is absent, never null: ``str | None`` documents as a string."""
    branches = schema.get("anyOf", [])
    kept = [b for b in branches if b != {"type": "null"}]
    if len(kept) != 1 or len(branches) != 2:
        return schema
    rest = {k: v for k, v in schema.items() if k != "anyOf" and (k != "default" or v is not None)}
    return {**kept[0], **rest}


def _require_tags(schemas: dict[str, Any]) -> None:
    """A tagged union needs its tag: pydantic's schema leaves a defaulted tag optional."""

    tags: list[tuple[str, str]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            found = node.get("discriminator", {})
            for ref in found.get("mapping", {}).values():
                tags.append((ref.rsplit("/", 1)[-1], found["propertyName"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schemas)
    for name, tag in tags:
        required = schemas[name].setdefault("required", [])
        if tag not in required:
            required.append(tag)
