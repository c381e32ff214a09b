"""Answering many interrupts in one request: by ids, or every pending one a filter picks.

Each is answered on its own (broker/core/bulk.py): the response lists one result per
interrupt, and a refused one changes nothing for the others.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from broker.api.body import read_json
from broker.api.deps import Principal, QueueDep, SettingsDep, StoreDep
from broker.api.openapi import BODY, REDIS, SCOPE, error_responses, json_body
from broker.core import auth, bulk, comments, errors, ids

router = APIRouter(
    prefix="/interrupts", tags=["interrupts"], responses=error_responses(*SCOPE, REDIS)
)
Id = Annotated[str, StringConstraints(pattern=ids.ID_PATTERN)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]


def _present(data: Any, names: tuple[str, ...]) -> list[str]:
    """The fields the raw body gives; an explicit null is refused (the document
    declares these fields non-null: absent means absent)."""
    if not isinstance(data, dict):
        return []
    for name in names:
        if name in data and data[name] is None:
            raise ValueError(f"{name} must not be null; leave it out instead")
    return [name for name in names if name in data]


def _schema(*non_null: str, **extra: Any) -> Any:
    """A schema hook: the ``non_null`` optional fields documented without their null
    branch, and ``extra`` keywords added to the model's schema."""

    def hook(schema: dict[str, Any]) -> None:
        for name in non_null:
            prop = schema["properties"][name]
            kept = [b for b in prop.pop("anyOf", []) if b != {"type": "null"}]
            prop.pop("default", None)
            if kept:
                prop.update(kept[0])
        schema.update(extra)

    return hook


class Filter(BaseModel):
    """Which pending interrupts: all that match every field given (at least one)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra=_schema("agent_id", "type", "thread_id", minProperties=1),
    )

    agent_id: Name | None = None
    type: Name | None = None
    thread_id: Id | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_at_least(cls, data: Any) -> Any:
        if isinstance(data, dict) and not _present(data, ("agent_id", "type", "thread_id")):
            raise ValueError("filter: give at least one of agent_id, type, thread_id")
        return data


class BulkResolve(BaseModel):
    """One answer for many interrupts: ``ids``, or a ``filter`` (exactly one of the two)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra=_schema(
            "ids", "filter", oneOf=[{"required": ["ids"]}, {"required": ["filter"]}]
        ),
    )

    ids: list[Id] | None = Field(
        default=None,
        min_length=1,
        max_length=bulk.MAX_ITEMS,
        json_schema_extra={"uniqueItems": True},
        description=f"The interrupts to answer (1 to {bulk.MAX_ITEMS}, each once).",
    )
    filter: Filter | None = Field(
        default=None,
        description=f"Answer the pending interrupts that match and the caller may answer "
        f"(those assigned to others are left out), oldest first, at most {bulk.MAX_ITEMS} "
        f"(`truncated` says when more matched, or the selection stopped after "
        f"{bulk.MAX_PAGES} pages of the pending list). Needs the {auth.READ!r} scope.",
    )
    value: Any = Field(description="The answer, given to each interrupt.", examples=[True])
    comment: str | None = Field(
        default=None, max_length=comments.MAX_CHARS, pattern=comments.PATTERN
    )
    resolved_by: str | None = Field(default=None, max_length=200)

    @model_validator(mode="before")
    @classmethod
    def _ids_or_filter(cls, data: Any) -> Any:
        given = _present(data, ("ids", "filter"))
        if isinstance(data, dict) and len(given) != 1:
            raise ValueError("give exactly one of ids and filter")
        ids_given = data.get("ids") if isinstance(data, dict) else None
        if isinstance(ids_given, list) and len(set(map(str, ids_given))) != len(ids_given):
            raise ValueError("ids: each id at most once")
        return data


RESULT = {
    "type": "object",
    "required": ["interrupt_id", "status"],
    "properties": {
        "interrupt_id": {"type": "string"},
        "status": {
            "type": "integer",
            "enum": [200, 403, 404, 409, 410, 422, 503],
            "description": "What a single answer to this interrupt would have got; 503 "
            "(`redis_unavailable`) when Redis failed under it, or under an earlier one "
            "(then it was not attempted: retry it).",
        },
        "error": {"$ref": "#/components/schemas/ErrorDetail"},
        "interrupt": {"type": "object", "description": "The resolved interrupt (on 200)."},
    },
}
RESULTS = {
    "description": "One result per interrupt, in the order of `ids` (or oldest first)",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["results", "accepted", "refused", "truncated"],
                "properties": {
                    "results": {"type": "array", "items": RESULT},
                    "accepted": {"type": "integer", "minimum": 0},
                    "refused": {"type": "integer", "minimum": 0},
                    "truncated": {
                        "type": "boolean",
                        "description": f"A filter matched more than {bulk.MAX_ITEMS}, or "
                        f"stopped after reading {bulk.MAX_PAGES} pages: answer these, then "
                        "send the filter again.",
                    },
                },
            }
        }
    },
}


@router.post(
    "/resolve",
    response_model=None,
    responses={200: RESULTS, **error_responses(*BODY)},
    openapi_extra=json_body(BulkResolve),
)
async def resolve_many(
    request: Request,
    store: StoreDep,
    queue: QueueDep,
    settings: SettingsDep,
    principal: Principal,
) -> dict[str, Any]:
    """Answers many interrupts with one answer; each is accepted or refused on its own."""
    limit = settings.max_answer_bytes + bulk.MAX_ITEMS * (ids.ID_MAX + 4) + 6 * comments.MAX_CHARS
    body = await read_json(request, BulkResolve, limit + 4096)
    truncated = False
    if body.filter is not None:
        if not principal.allows(auth.READ):
            # a filter reads the pending list first
            raise errors.Forbidden(
                f"the API key {principal.actor!r} lacks the {auth.READ!r} scope to select "
                "interrupts by filter; name them by ids instead",
                scope=auth.READ,
            )
        chosen, truncated = await bulk.pending_matching(
            store,
            principal,
            agent_id=body.filter.agent_id,
            itype=body.filter.type,
            thread_id=body.filter.thread_id,
        )
    else:
        chosen = list(body.ids or [])
    results = await bulk.answer_each(
        store,
        queue,
        chosen,
        body.value,
        principal=principal,
        resolved_by=body.resolved_by,
        comment=body.comment,
    )
    return bulk.summary(results, truncated=truncated)
