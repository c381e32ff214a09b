"""``/langgraph/threads/{thread_id}/runs``: create, wait, stream, get, join, cancel."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from broker.api import visibility
from broker.api.body import read_json
from broker.api.deps import Principal, Reader, RegistryDep, RunWriter
from broker.api.langgraph import errors as lgerrors
from broker.api.langgraph import (
    follow,
    paths,  # noqa: F401  (the path convertors)
    shapes,
    start,
)
from broker.api.langgraph.context import CtxDep
from broker.api.langgraph.follow import Ctx
from broker.api.openapi import BODY, REDIS, SCOPE, error_responses, json_body, sse
from broker.api.responses import JSON
from broker.core import auth, channel, errors
from broker.core.records import RunRecord

COMMON = error_responses(*SCOPE, REDIS)
router = APIRouter(
    prefix="/langgraph/threads/{thread_id}/runs", tags=["langgraph"], responses=COMMON
)

REFUSALS = (
    *BODY,
    *SCOPE,
    errors.AgentNotFound,
    errors.ThreadNotFound,
    errors.ThreadBusy,
    errors.ThreadAgentMismatch,
    lgerrors.NoPendingInterrupt,
    lgerrors.UnknownInterrupt,
    lgerrors.AmbiguousResume,
    lgerrors.Unsupported,
    errors.InvalidAnswer,
    errors.AlreadyResolved,
    errors.InterruptClosed,
    errors.InterruptExpired,
    errors.NotAssignee,
)


def _location(run: RunRecord) -> dict[str, str]:
    """Where the run is: the SDK's ``on_run_created`` reads it."""
    return {"Content-Location": f"/langgraph/threads/{run.thread_id}/runs/{run.id}"}


async def _begin(
    request: Request, ctx: Ctx, registry: dict[str, Any], principal: auth.Principal, tid: str
) -> tuple[start.RunCreate, RunRecord, str, int]:
    body = await read_json(request, start.RunCreate, ctx.settings.max_input_bytes)
    run, since, since_ms = await start.begin(ctx, registry, principal, tid, body)
    return body, run, since, since_ms


async def _pending(ctx: Ctx, run: RunRecord) -> bool:
    return bool(await ctx.store.pending_interrupts(run.id))


@router.post(
    "",
    response_model=dict[str, Any],
    responses=error_responses(*REFUSALS),
    openapi_extra=json_body(start.RunCreate),
)
async def create_run(
    thread_id: str, request: Request, ctx: CtxDep, registry: RegistryDep, principal: Principal
) -> Response:
    """Starts a run with ``input``, or resumes the thread's run with
    ``command: {"resume": …}``; answers the run at once."""
    _, run, _, _ = await _begin(request, ctx, registry, principal, thread_id)
    run = await ctx.store.run(run.id)
    return JSON(shapes.run(run, await _pending(ctx, run)), headers=_location(run))


@router.post(
    "/wait",
    response_model=Any,
    responses=error_responses(*REFUSALS),
    openapi_extra=json_body(start.RunCreate),
)
async def wait_run(
    thread_id: str, request: Request, ctx: CtxDep, registry: RegistryDep, principal: Principal
) -> Response:
    """As ``POST …/runs``, then waits until the run ends or stops on interrupts: the
    thread's values, with ``__interrupt__`` while it waits for answers."""
    _need_read(principal)
    _, run, since, _ = await _begin(request, ctx, registry, principal, thread_id)
    ended, pending = await follow.until_settled(ctx, run, since)
    return JSON(await follow.result(ctx, ended, pending), headers=_location(run))


@router.post(
    "/stream",
    response_class=StreamingResponse,
    responses={
        200: sse("The Agent Server's events: metadata, values, updates, error", named=True),
        **error_responses(*REFUSALS),
    },
    openapi_extra=json_body(start.RunCreate),
)
async def stream_run(
    thread_id: str, request: Request, ctx: CtxDep, registry: RegistryDep, principal: Principal
) -> StreamingResponse:
    """As ``POST …/runs``, then Server-Sent Events until the run ends or stops on
    interrupts (``stream_mode`` values and updates)."""
    _need_read(principal)
    body, run, since, since_ms = await _begin(request, ctx, registry, principal, thread_id)
    modes = start.modes(body)
    return StreamingResponse(
        follow.stream(ctx, run, since, since_ms, modes),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **_location(run)},
    )


def _need_read(principal: auth.Principal) -> None:
    if not principal.allows(auth.READ):
        raise errors.Forbidden(
            f"the API key {principal.actor!r} lacks the {auth.READ!r} scope", scope=auth.READ
        )


async def _run_of(ctx: Ctx, principal: auth.Principal, thread_id: str, run_id: str) -> RunRecord:
    run = await visibility.run(ctx.store, principal, run_id)
    if run.thread_id != thread_id:
        raise errors.RunNotFound(f"no run {run_id!r} on thread {thread_id!r}")
    return run


@router.get(
    "/{run_id:lg_run}", response_model=dict[str, Any], responses=error_responses(errors.RunNotFound)
)
async def get_run(thread_id: str, run_id: str, ctx: CtxDep, principal: Reader) -> Response:
    """One run."""
    run = await _run_of(ctx, principal, thread_id, run_id)
    return JSON(shapes.run(run, await _pending(ctx, run)))


@router.get(
    "/{run_id:lg_run}/join", response_model=Any, responses=error_responses(errors.RunNotFound)
)
async def join_run(thread_id: str, run_id: str, ctx: CtxDep, principal: Reader) -> Response:
    """Waits until the run ends or stops on interrupts; answers as ``…/runs/wait``."""
    run = await _run_of(ctx, principal, thread_id, run_id)
    since = await follow.cursor(ctx.store, run.id)
    ended, pending = await follow.until_settled(ctx, run, since)
    return JSON(await follow.result(ctx, ended, pending))


@router.post(
    "/{run_id:lg_run}/cancel",
    response_model=dict[str, Any],
    responses=error_responses(errors.RunNotFound, errors.RunFinished),
)
async def cancel_run(thread_id: str, run_id: str, ctx: CtxDep, principal: RunWriter) -> Response:
    """Stops the run (``wait`` and ``action`` are accepted; the stop is immediate and
    ends it); its pending interrupts close."""
    await _run_of(ctx, principal, thread_id, run_id)
    await channel.cancel(ctx.store, ctx.queue, run_id, ctx.threads.saver)
    return JSON(shapes.run(await ctx.store.run(run_id), False))
