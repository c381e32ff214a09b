"""Who may answer an interrupt: ``POST /interrupts/{id}/assign`` (broker/core/assignment.py).

Listing what is assigned to someone is a filter of ``GET /interrupts`` (``assigned_to``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from broker.api import visibility
from broker.api.body import read_json
from broker.api.deps import SettingsDep, StoreDep, scoped
from broker.api.openapi import BODY, REDIS, SCOPE, error_responses, json_body
from broker.core import assignment, auth, comments, errors

router = APIRouter(
    prefix="/interrupts", tags=["interrupts"], responses=error_responses(*SCOPE, REDIS)
)
Assigner = Annotated[auth.Principal, Depends(scoped(auth.ASSIGN))]

_NAME = Annotated[str, Field(pattern=assignment.NAME_PATTERN)]
_NAMES_TEXT = "`user:<subject or email>` or `group:<group>` names"


class Assign(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    assignees: list[_NAME] = Field(
        max_length=assignment.MAX_NAMES,
        description=f"Who may answer: {_NAMES_TEXT}; empty: anyone with the resolve scope.",
        examples=[["group:finance", "user:alice@example.com"]],
    )
    watchers: list[_NAME] | None = Field(
        default=None,
        max_length=assignment.MAX_NAMES,
        description=f"Who follows it without answering: {_NAMES_TEXT}; absent: none.",
    )
    comment: str | None = Field(
        default=None,
        max_length=comments.MAX_CHARS,
        pattern=comments.PATTERN,
        description="Why, kept in the audit entry: no control characters but line breaks and tabs.",
    )


@router.post(
    "/{interrupt_id}/assign",
    response_model=dict[str, Any],
    responses=error_responses(
        *BODY,
        errors.InterruptNotFound,
        errors.AlreadyResolved,
        errors.InterruptClosed,
        errors.InterruptExpired,
    ),
    openapi_extra=json_body(Assign),
)
async def assign_interrupt(
    interrupt_id: str,
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    principal: Assigner,
) -> dict[str, Any]:
    """Changes who may answer a pending interrupt, and who watches it."""
    await visibility.interrupt(store, principal, interrupt_id)
    body = await read_json(request, Assign, settings.max_answer_bytes)
    return await assignment.reassign(
        store,
        interrupt_id,
        body.assignees,
        body.watchers,
        principal=principal,
        comment=body.comment,
    )
