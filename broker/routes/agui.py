from __future__ import annotations

from collections.abc import AsyncIterator

from ag_ui.core import RunAgentInput
from ag_ui.encoder import EventEncoder
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from broker import errors
from broker.agui.session import AguiSession
from broker.body import read_json_object, validation_message
from broker.deps import HubDep, QueueDep, RegistryDep, SettingsDep, StoreDep

router = APIRouter(prefix="/agui", tags=["ag-ui"])


@router.post("/{agent_id}")
async def run_agent(
    agent_id: str,
    request: Request,
    store: StoreDep,
    hub: HubDep,
    queue: QueueDep,
    registry: RegistryDep,
    settings: SettingsDep,
) -> StreamingResponse:
    """AG-UI endpoint: a RunAgentInput in, an SSE stream of AG-UI events out."""
    data = await read_json_object(request, settings.max_input_bytes)
    try:
        inp = RunAgentInput.model_validate(data)
    except ValidationError as exc:
        raise errors.InvalidRequest(validation_message(exc)) from exc
    if agent_id not in registry:
        raise errors.AgentNotFound(
            f"no agent {agent_id!r}; known agents: {', '.join(sorted(registry))}",
            known_agents=sorted(registry),
        )
    encoder = EventEncoder(accept=request.headers.get("accept") or "text/event-stream")
    session = AguiSession(
        store=store,
        hub=hub,
        queue=queue,
        threads=request.app.state.threads,
        settings=settings,
        agent_id=agent_id,
        inp=inp,
    )

    async def body() -> AsyncIterator[str]:
        async for event in session.events():
            yield encoder.encode(event)

    return StreamingResponse(
        body(),
        media_type=encoder.get_content_type(),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
