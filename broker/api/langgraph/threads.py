"""``/langgraph/threads``: create, get, search (``status: "interrupted"`` finds the
threads waiting on people), state, and ending a thread's run (Agent Inbox's ignore)."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from broker.api.body import read_json
from broker.api.deps import Reader, RegistryDep, RunWriter
from broker.api.langgraph import (
    paths,  # noqa: F401  (the path convertors)
    search,
    state,
    threadinfo,
)
from broker.api.langgraph.context import CtxDep
from broker.api.langgraph.errors import ThreadExists, Unsupported
from broker.api.langgraph.follow import Ctx
from broker.api.openapi import BODY, REDIS, SCOPE, error_responses, json_body
from broker.api.responses import JSON
from broker.core import channel, errors, ids
from broker.core.records import InterruptRecord

COMMON = error_responses(*SCOPE, REDIS)
router = APIRouter(prefix="/langgraph/threads", tags=["langgraph"], responses=COMMON)


class ThreadCreate(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    thread_id: str | None = Field(
        default=None, pattern=ids.ID_PATTERN, description=f"A thread id: {ids.ID_RULE}."
    )
    metadata: dict[str, Any] = Field(default_factory=dict)
    if_exists: Literal["raise", "do_nothing"] = "raise"
    supersteps: list[Any] | None = None


class ThreadSearch(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    status: Literal["idle", "busy", "interrupted", "error"] | None = None
    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    ids: list[str] | None = Field(default=None, max_length=1000)
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)
    sort_by: Literal["thread_id", "status", "created_at", "updated_at"] = "updated_at"
    sort_order: Literal["asc", "desc"] = "desc"


async def with_state(ctx: Ctx, info: threadinfo.ThreadInfo) -> dict[str, Any]:
    """The thread with its values and pending interrupts (``{task id: [...]}``)."""
    out = info.view()
    pending = await _pending(ctx, info)
    snap = await state.snapshot(ctx.threads, info.agent_id, info.thread_id)
    out["values"] = state.values(snap)
    out["interrupts"] = state.interrupts_map(snap, pending)
    return out


@router.post(
    "",
    response_model=dict[str, Any],
    responses=error_responses(*BODY, errors.AgentNotFound, errors.ThreadNotFound, ThreadExists),
    openapi_extra=json_body(ThreadCreate),
)
async def create_thread(
    request: Request, ctx: CtxDep, registry: RegistryDep, principal: RunWriter
) -> dict[str, Any]:
    """Makes a thread (a new id unless one is given); ``metadata.graph_id`` ties it to an
    agent. An existing id is 409 ``thread_exists`` unless ``if_exists`` is
    ``do_nothing``."""
    body = await read_json(request, ThreadCreate, ctx.settings.max_input_bytes)
    if body.supersteps:
        raise Unsupported("supersteps: the broker makes threads without prefilled state")
    agent = body.metadata.get("graph_id")
    if agent is not None and (agent not in registry or not principal.sees(agent)):
        raise errors.AgentNotFound(f"metadata.graph_id: no agent {agent!r}")
    thread_id = body.thread_id or str(uuid.uuid4())
    info = await threadinfo.create(
        ctx.store, thread_id, body.metadata, agent, body.if_exists, principal
    )
    return await with_state(ctx, info)


@router.post(
    "/search",
    response_model=list[dict[str, Any]],
    responses=error_responses(*BODY),
    openapi_extra=json_body(ThreadSearch),
)
async def search_threads(request: Request, ctx: CtxDep, principal: Reader) -> Response:
    """Threads the key may see, filtered by status, metadata, values or ids; the newest
    runs and made threads are searched (``search.SCAN`` of each)."""
    body = await read_json(request, ThreadSearch, ctx.settings.max_input_bytes)
    found = await search.threads(ctx.store, principal, body)
    page = found[body.offset : body.offset + body.limit]
    views = [await with_state(ctx, info) for info in page]
    if body.values:
        views = [v for v in views if search.matches(v["values"], body.values)]
    return JSON(views)


@router.get(
    "/{thread_id:lg_id}",
    response_model=dict[str, Any],
    responses=error_responses(errors.ThreadNotFound),
)
async def get_thread(thread_id: str, ctx: CtxDep, principal: Reader) -> Response:
    """One thread: status, metadata, values and pending interrupts."""
    return JSON(await with_state(ctx, await threadinfo.seen(ctx.store, principal, thread_id)))


@router.get(
    "/{thread_id:lg_id}/state",
    response_model=dict[str, Any],
    responses=error_responses(errors.ThreadNotFound),
)
async def get_state(thread_id: str, ctx: CtxDep, principal: Reader) -> Response:
    """The thread's current state: values, next nodes, tasks and their interrupts."""
    info = await threadinfo.seen(ctx.store, principal, thread_id)
    return JSON(await thread_state(ctx, info))


class StateUpdate(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    values: Any = None
    as_node: str | None = None
    checkpoint: dict[str, Any] | None = None
    checkpoint_id: str | None = None


END = "__end__"


@router.post(
    "/{thread_id:lg_id}/state",
    response_model=dict[str, Any],
    responses=error_responses(errors.ThreadNotFound, errors.RunFinished, Unsupported, *BODY),
    openapi_extra=json_body(StateUpdate),
)
async def update_state(
    thread_id: str, request: Request, ctx: CtxDep, principal: RunWriter
) -> Response:
    """Ends the thread's run: ``{"values": null, "as_node": "__end__"}``, as Agent Inbox
    sends to ignore a thread. Its pending interrupts close as cancelled. A thread's
    state changes otherwise only through runs and answers."""
    body = await read_json(request, StateUpdate, ctx.settings.max_input_bytes)
    if body.as_node != END or body.values not in (None, {}) or body.checkpoint_id:
        raise Unsupported(
            "update_state: a thread's state changes through runs and answers; only "
            f"as_node={END!r} with no values (end the thread's run) is served"
        )
    info = await threadinfo.seen(ctx.store, principal, thread_id)
    run = info.newest
    if run is None or info.status not in ("busy", "interrupted"):
        raise errors.RunFinished(f"thread {thread_id!r} has no run to end")
    await channel.cancel(ctx.store, ctx.queue, run["run_id"], ctx.threads.saver)
    snap = await state.snapshot(ctx.threads, info.agent_id, thread_id)
    return JSON({"checkpoint": state.thread_state(thread_id, snap, [])["checkpoint"]})


async def thread_state(ctx: Ctx, info: threadinfo.ThreadInfo) -> dict[str, Any]:
    pending = await _pending(ctx, info)
    snap = await state.snapshot(ctx.threads, info.agent_id, info.thread_id)
    return state.thread_state(info.thread_id, snap, pending)


async def _pending(ctx: Ctx, info: threadinfo.ThreadInfo) -> list[InterruptRecord]:
    """The pending interrupts of the thread's run waiting on them (only the newest run
    of a thread can be)."""
    if info.newest is None or info.status != "interrupted":
        return []
    return await ctx.store.pending_interrupts(info.newest["run_id"])
