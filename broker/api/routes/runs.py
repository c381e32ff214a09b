from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from broker.api import visibility
from broker.api.body import read_json
from broker.api.deps import QueueDep, Reader, RegistryDep, RunWriter, SettingsDep, StoreDep
from broker.api.openapi import BODY, QUERY, REDIS, SCOPE, Cursor, error_responses, json_body
from broker.api.responses import JSON
from broker.core import channel, errors, ids, telemetry
from broker.core.jobs import enqueue_advance
from broker.core.records import RunStatus

router = APIRouter(prefix="/runs", tags=["runs"], responses=error_responses(*SCOPE, REDIS))


class StartRun(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    agent_id: str = Field(min_length=1, max_length=200, examples=["naming"])
    input: Any = Field(
        default_factory=dict, examples=[{"messages": [{"role": "user", "content": "hi"}]}]
    )
    thread_id: str | None = Field(
        default=None, pattern=ids.ID_PATTERN, description=f"A thread id: {ids.ID_RULE}."
    )
    metadata: dict[str, Any] = Field(default_factory=dict)


class RunStarted(BaseModel):
    run_id: str
    thread_id: str
    status: RunStatus


@router.post(
    "",
    status_code=202,
    response_model=RunStarted,
    responses=error_responses(
        *BODY,
        errors.AgentNotFound,
        errors.ThreadNotFound,
        errors.ThreadBusy,
        errors.ThreadAgentMismatch,
        errors.IdempotencyKeyReused,
    ),
    openapi_extra=json_body(StartRun),
)
async def start_run(
    request: Request,
    store: StoreDep,
    queue: QueueDep,
    registry: RegistryDep,
    settings: SettingsDep,
    principal: RunWriter,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> dict[str, Any]:
    """Starts a run of an agent on a thread (a new thread unless one is given). With an
    ``Idempotency-Key``, a retry gets the original response and starts no second run."""
    # the run's root span: the run record keeps its context (broker/core/telemetry.py)
    with telemetry.request("POST /runs"):
        body = await read_json(request, StartRun, settings.max_input_bytes)
        known = sorted(a for a in registry if principal.sees(a))
        if body.agent_id not in known:
            raise errors.AgentNotFound(
                f"no agent {body.agent_id!r}; known agents: {', '.join(known)}",
                known_agents=known,
            )
        if body.thread_id:
            await visibility.thread(store, principal, body.thread_id, body.agent_id)
        run = await store.create_run(
            body.agent_id,
            body.thread_id,
            body.input,
            body.metadata,
            idempotency_key=idempotency_key,
        )
        telemetry.bind(run_id=run.id, thread_id=run.thread_id, agent_id=run.agent_id)
        # queued again on a replay too: a first call that died before queueing loses nothing
        await enqueue_advance(queue, store, run.id, "start", (run.thread_id, run.agent_id))
        return {"run_id": run.id, "thread_id": run.thread_id, "status": run.status.value}


@router.get(
    "", response_model=dict[str, Any], responses=error_responses(*QUERY, errors.InvalidCursor)
)
async def list_runs(
    store: StoreDep,
    settings: SettingsDep,
    principal: Reader,
    status: Annotated[RunStatus | None, Query()] = None,
    agent_id: str | None = None,
    thread_id: Annotated[str | None, Query(pattern=ids.ID_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Cursor = None,
    order: Literal["asc", "desc"] = "desc",
) -> Response:
    """Runs, newest first, filtered by status, agent or thread; paged by cursor."""
    page = await store.list_runs(
        status=status,
        agent_id=agent_id,
        thread_id=thread_id,
        limit=min(limit, settings.page_limit_max),
        cursor=cursor,
        order=order,
        visible=principal.agents,
    )
    return JSON({"items": page.items, "next_cursor": page.next_cursor})


@router.get(
    "/{run_id}", response_model=dict[str, Any], responses=error_responses(errors.RunNotFound)
)
async def get_run(run_id: str, store: StoreDep, principal: Reader) -> Response:
    """One run: status, pending interrupt ids, output and error."""
    return JSON(await visibility.run_view(store, principal, run_id))


@router.post("/{run_id}/cancel", responses=error_responses(errors.RunNotFound, errors.RunFinished))
async def cancel_run(
    run_id: str, request: Request, store: StoreDep, queue: QueueDep, principal: RunWriter
) -> dict[str, Any]:
    """Stops a queued, running or interrupted run; its pending interrupts close."""
    await visibility.run(store, principal, run_id)
    return await channel.cancel(store, queue, run_id, request.app.state.threads.saver)
