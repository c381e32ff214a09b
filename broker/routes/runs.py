from __future__ import annotations

from typing import Annotated, Any, Literal

from arq.constants import abort_jobs_ss
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from broker import errors
from broker.body import read_json
from broker.codec import now_ms
from broker.deps import QueueDep, RegistryDep, SettingsDep, StoreDep
from broker.queue import enqueue_advance
from broker.records import RUN_STATUSES

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
) -> dict[str, Any]:
    """Starts a run of an agent on a thread (a new thread unless one is given)."""
    body = await read_json(request, StartRun, settings.max_input_bytes)
    if body.agent_id not in registry:
        raise errors.AgentNotFound(
            f"no agent {body.agent_id!r}; known agents: {', '.join(sorted(registry))}",
            known_agents=sorted(registry),
        )
    run = await store.create_run(body.agent_id, body.thread_id, body.input, body.metadata)
    await enqueue_advance(queue, store, run["run_id"], "start")
    return {"run_id": run["run_id"], "thread_id": run["thread_id"], "status": run["status"]}


@router.get("")
async def list_runs(
    store: StoreDep,
    settings: SettingsDep,
    status: Annotated[Literal[RUN_STATUSES] | None, Query()] = None,  # type: ignore[valid-type]
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
    )
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.get("/{run_id}")
async def get_run(run_id: str, store: StoreDep) -> dict[str, Any]:
    """One run: status, pending interrupt ids, output and error."""
    return await store.get_run(run_id)


@router.post("/{run_id}/cancel")
async def cancel_run(run_id: str, store: StoreDep, queue: QueueDep) -> dict[str, Any]:
    """Stops a queued, running or interrupted run; its pending interrupts close."""
    run = await store.cancel_run(run_id)
    job_id = (await store.run_hash(run_id)).get("job_id")
    if job_id:
        # a worker executing the run stops it at its next await
        await queue.zadd(abort_jobs_ss, {job_id: now_ms()})
    return run
