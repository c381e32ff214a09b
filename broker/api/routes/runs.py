from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from broker.api import visibility
from broker.api.body import read_json
from broker.api.deps import QueueDep, Reader, RegistryDep, RunWriter, SettingsDep, StoreDep
from broker.core import channel, errors
from broker.core.jobs import enqueue_advance
from broker.core.records import RunStatus

router = APIRouter(prefix="/runs", tags=["runs"])

ID_PATTERN = r"^[A-Za-z0-9._:\-]{1,200}$"


class StartRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_id: str = Field(min_length=1, max_length=200)
    input: Any = Field(default_factory=dict)
    thread_id: str | None = Field(default=None, pattern=ID_PATTERN)
    metadata: dict[str, Any] = Field(default_factory=dict)


@router.post("", status_code=202)
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
    body = await read_json(request, StartRun, settings.max_input_bytes)
    known = sorted(a for a in registry if principal.sees(a))
    if body.agent_id not in known:
        raise errors.AgentNotFound(
            f"no agent {body.agent_id!r}; known agents: {', '.join(known)}",
            known_agents=known,
        )
    if body.thread_id and principal.agents is not None:
        # a thread's checkpoints hold its conversation: never let another agent read it
        if not await store.thread_agents(body.thread_id) <= principal.agents:
            raise errors.ThreadNotFound(f"no thread {body.thread_id!r} for this API key")
    run = await store.create_run(
        body.agent_id,
        body.thread_id,
        body.input,
        body.metadata,
        idempotency_key=idempotency_key,
    )
    # queued again on a replay too: a first call that died before queueing loses nothing
    await enqueue_advance(queue, store, run.id, "start")
    return {"run_id": run.id, "thread_id": run.thread_id, "status": run.status.value}


@router.get("")
async def list_runs(
    store: StoreDep,
    settings: SettingsDep,
    principal: Reader,
    status: Annotated[RunStatus | None, Query()] = None,
    agent_id: str | None = None,
    thread_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
    order: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
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
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.get("/{run_id}")
async def get_run(run_id: str, store: StoreDep, principal: Reader) -> dict[str, Any]:
    """One run: status, pending interrupt ids, output and error."""
    await visibility.run(store, principal, run_id)
    return await store.get_run(run_id)


@router.post("/{run_id}/cancel")
async def cancel_run(
    run_id: str, store: StoreDep, queue: QueueDep, principal: RunWriter
) -> dict[str, Any]:
    """Stops a queued, running or interrupted run; its pending interrupts close."""
    await visibility.run(store, principal, run_id)
    return await channel.cancel(store, queue, run_id)
