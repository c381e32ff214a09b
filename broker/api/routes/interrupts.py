from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.convertors import StringConvertor, register_url_convertor

from broker.api import visibility
from broker.api.body import read_json
from broker.api.deps import Principal, QueueDep, Reader, SettingsDep, StoreDep
from broker.api.openapi import (
    BODY,
    QUERY,
    REDIS,
    SCOPE,
    Cursor,
    error_responses,
    json_body,
)
from broker.api.responses import JSON
from broker.core import assignment, audit, channel, comments, errors, fingerprint, ids
from broker.core.codec import dumps
from broker.core.records import Channel, InterruptStatus

router = APIRouter(
    prefix="/interrupts", tags=["interrupts"], responses=error_responses(*SCOPE, REDIS)
)


class _OneInterrupt(StringConvertor):
    """An interrupt id as the last path segment: any but ``resolve``, which is the bulk
    answer (``POST /interrupts/resolve``, broker/api/routes/bulk.py), so that other
    methods there get 405 rather than a lookup of an interrupt named "resolve"."""

    regex = "(?!resolve$)[^/]+"


register_url_convertor("one_interrupt", _OneInterrupt())
ETAG = {"ETag": {"description": "Send it back as If-None-Match.", "schema": {"type": "string"}}}
FINGERPRINT = {
    "ETag": {
        "description": 'The interrupt\'s fingerprint, quoted (`"<fingerprint>"`): send it '
        "back as If-Match when answering, so the answer is taken only for the question "
        "shown. Absent on records made before fingerprints.",
        "schema": {"type": "string"},
    }
}
IF_MATCH = (
    'The fingerprint of the question answered (the ETag of GET /interrupts/{id}): `"<fp>"`, '
    "bare, or `*` (any). When the interrupt asks something else now, the answer is "
    "refused with 412 `fingerprint_mismatch` and nothing changes."
)


class Resolve(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    value: Any = Field(
        description="The answer; the graph's interrupt() returns it.", examples=[True]
    )
    resolved_by: str | None = Field(default=None, max_length=200)
    comment: str | None = Field(
        default=None,
        max_length=comments.MAX_CHARS,
        pattern=comments.PATTERN,
        description="Why: a note kept with the answer and in the audit log. On a tool "
        "review, the reason of each reject decision that gives none.",
        examples=["The recipient list is wrong"],
    )


@router.get(
    "",
    response_model=Any,
    responses={
        200: {"headers": ETAG},
        304: {"description": "Nothing changed since the ETag sent", "headers": ETAG},
        **error_responses(*QUERY, errors.InvalidCursor),
    },
)
async def list_interrupts(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    principal: Reader,
    status: InterruptStatus = InterruptStatus.PENDING,
    agent_id: str | None = None,
    type: str | None = None,
    thread_id: Annotated[str | None, Query(pattern=ids.ID_PATTERN)] = None,
    run_id: Annotated[str | None, Query(pattern=ids.ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Cursor = None,
    order: Literal["asc", "desc"] = "asc",
    assigned_to: Annotated[
        str | None,
        Query(
            pattern=assignment.LISTED_PATTERN,
            description="`me`: pending interrupts the caller (a signed-in person) is among "
            "the assignees of, directly or through a group (none for an API key); or one "
            "name, `user:…` or `group:…`. Lists pending interrupts only.",
        ),
    ] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """Interrupts, oldest first, filtered; paged by cursor; 304 when nothing changed."""
    names = assignment.listed(principal, assigned_to)
    # "me" names someone else for each caller: their names are part of the tag
    asked = [*sorted(request.query_params.multi_items()), *sorted(names or ())]
    query = hashlib.sha256(str(asked).encode()).hexdigest()
    if principal.agents is None and if_none_match:
        # unchanged since the client's copy: 304 without reading a record
        etag = f'W/"{await store.interrupts_version()}-{query[:16]}"'
        if _matches(if_none_match, etag):
            return Response(status_code=304, headers={"ETag": etag})
    got = await store.list_interrupts(
        status=status,
        agent_id=agent_id,
        itype=type,
        thread_id=thread_id,
        run_id=run_id,
        limit=min(limit, settings.page_limit_max),
        cursor=cursor,
        order=order,
        visible=principal.agents,
        assigned_to=names,
        # the version is read with the page, in the same round trip
        version=principal.agents is None,
    )
    if got.version is not None:
        etag = f'W/"{got.version}-{query[:16]}"'
    else:
        # the version counts every agent's changes: a key limited to some gets the digest
        # of its own page instead, so another agent's activity never shows in its ETag
        seen = dumps([query, got.items, got.next_cursor]).encode()
        etag = f'W/"p-{hashlib.sha256(seen).hexdigest()[:32]}"'
    if _matches(if_none_match, etag):
        return Response(status_code=304, headers={"ETag": etag})
    return JSON({"items": got.items, "next_cursor": got.next_cursor}, headers={"ETag": etag})


def _matches(if_none_match: str | None, etag: str) -> bool:
    return bool(if_none_match) and etag in [t.strip() for t in (if_none_match or "").split(",")]


@router.get(
    "/{interrupt_id:one_interrupt}",
    response_model=dict[str, Any],
    responses={
        200: {"headers": FINGERPRINT},
        **error_responses(errors.InterruptNotFound),
    },
)
async def get_interrupt(interrupt_id: str, store: StoreDep, principal: Reader) -> Response:
    """One interrupt, with its resolution once it has one; its fingerprint as ETag."""
    h = await visibility.interrupt(store, principal, interrupt_id)
    headers = {"ETag": f'"{h.fingerprint}"'} if h.fingerprint else None
    return JSON(h.view(), headers=headers)


@router.get("/{interrupt_id}/audit", responses=error_responses(errors.InterruptNotFound))
async def get_audit(interrupt_id: str, store: StoreDep, principal: Reader) -> dict[str, Any]:
    """Every attempt to answer the interrupt, accepted or refused, oldest first."""
    await visibility.interrupt(store, principal, interrupt_id)
    return {"items": await audit.read(store.r, store.keys, interrupt_id)}


@router.post(
    "/{interrupt_id}/resolve",
    responses=error_responses(
        *BODY,
        *SCOPE,
        errors.NotAssignee,
        errors.NotEligible,
        errors.NotYourTurn,
        errors.AlreadyVoted,
        errors.InvalidAnswer,
        errors.IdempotencyKeyReused,
        errors.InterruptNotFound,
        errors.AlreadyResolved,
        errors.InterruptClosed,
        errors.InterruptExpired,
        errors.FingerprintMismatch,
    ),
    openapi_extra=json_body(Resolve),
)
async def resolve_interrupt(
    interrupt_id: str,
    request: Request,
    store: StoreDep,
    queue: QueueDep,
    settings: SettingsDep,
    principal: Principal,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
    if_match: Annotated[str | None, Header(max_length=2000, description=IF_MATCH)] = None,
) -> dict[str, Any]:
    """Answers a pending interrupt; the first valid answer wins and its run resumes.
    On an interrupt decided by votes (a quorum or a chain), the answer is the caller's
    vote: 200 with the interrupt and its votes; the vote that meets the rule resolves
    it."""
    try:
        body = await read_json(request, Resolve, settings.max_answer_bytes)
    except errors.BrokerError as exc:
        # audited too: every attempt to answer is, whatever stopped it
        await channel.refuse(
            store, interrupt_id, exc.code, channel=Channel.REST, principal=principal
        )
        raise
    return await channel.answer(
        store,
        queue,
        interrupt_id,
        body.value,
        channel=Channel.REST,
        principal=principal,
        resolved_by=body.resolved_by,
        idempotency_key=idempotency_key,
        comment=body.comment,
        if_match=fingerprint.tags(if_match),
    )
