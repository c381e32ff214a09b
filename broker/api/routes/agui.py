from __future__ import annotations

from collections.abc import AsyncIterator

from ag_ui.core import EventType, RunAgentInput, RunErrorEvent
from ag_ui.encoder import EventEncoder
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from broker.api import visibility
from broker.api.agui.session import AguiSession, is_resume
from broker.api.body import read_json_object, validation_message
from broker.api.deps import HubDep, Principal, QueueDep, RegistryDep, SettingsDep, StoreDep
from broker.api.openapi import BODY, REDIS, SCOPE, error_responses, json_body, sse
from broker.core import auth, errors, ids

router = APIRouter(prefix="/agui", tags=["ag-ui"])


@router.post(
    "/{agent_id}",
    response_class=StreamingResponse,
    responses={
        200: sse("AG-UI events, each a `data` line", named=False),
        **error_responses(*SCOPE, REDIS, *BODY, errors.AgentNotFound),
    },
    openapi_extra=json_body(RunAgentInput, by_alias=True),
)
async def run_agent(
    agent_id: str,
    request: Request,
    store: StoreDep,
    hub: HubDep,
    queue: QueueDep,
    registry: RegistryDep,
    settings: SettingsDep,
    principal: Principal,
) -> StreamingResponse:
    """AG-UI endpoint: a RunAgentInput in, an SSE stream of AG-UI events out."""
    data = await read_json_object(request, settings.max_input_bytes)
    try:
        inp = RunAgentInput.model_validate(data)
    except ValidationError as exc:
        raise errors.InvalidRequest(validation_message(exc)) from exc
    if not ids.is_id(inp.thread_id):
        # the thread id names the broker's keys for the thread: its shape is checked first
        raise errors.InvalidRequest(f"threadId: a thread id is {ids.ID_RULE}")
    visible = sorted(a for a in registry if principal.sees(a))
    if agent_id not in visible:
        raise errors.AgentNotFound(
            f"no agent {agent_id!r}; known agents: {', '.join(visible)}", known_agents=visible
        )
    # the stream shows the thread's interrupts; a request either answers them or may
    # start a run, and the store checks the resolve scope again on every answer
    needed = [auth.READ, auth.RESOLVE if is_resume(inp) else auth.RUNS_WRITE]
    for scope in needed:
        if not principal.allows(scope):
            raise errors.Forbidden(
                f"the API key {principal.actor!r} lacks the {scope!r} scope", scope=scope
            )
    # before anything of the thread is read: another agent's thread, or one the key may
    # not see, is refused as POST /runs refuses it, with a plain HTTP error
    await visibility.thread(store, principal, inp.thread_id, agent_id)
    encoder = EventEncoder(accept=request.headers.get("accept") or "text/event-stream")
    session = AguiSession(
        store=store,
        hub=hub,
        queue=queue,
        threads=request.app.state.threads,
        settings=settings,
        agent_id=agent_id,
        inp=inp,
        principal=principal,
    )

    async def body() -> AsyncIterator[str]:
        started = False
        try:
            async for event in session.events():
                started = started or getattr(event, "type", None) == EventType.RUN_STARTED
                yield ": keep-alive\n\n" if event is None else encoder.encode(event)
        except Exception as exc:
            # Redis went away or the API is draining: RUN_ERROR, and a retry hint; the
            # same request sent again shows where the thread stands
            error = errors.unavailable(exc)
            if error is None:
                raise
            if not started:
                yield encoder.encode(session.started_event())
            failed = RunErrorEvent(type=EventType.RUN_ERROR, code=error.code, message=error.message)
            yield f"retry: {errors.RETRY_AFTER_S * 1000}\n" + encoder.encode(failed)

    return StreamingResponse(
        body(),
        media_type=encoder.get_content_type(),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
