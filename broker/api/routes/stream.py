"""Live events: SSE per run, and a WebSocket of every run and interrupt event."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from broker.api import visibility
from broker.api.deps import HubDep, Reader, SettingsDep, StoreDep
from broker.api.events import (
    TERMINAL_EVENTS,
    after,
    first_id,
    follow_run,
    is_stream_id,
    last_id,
    replay,
)
from broker.api.openapi import EVENT_ID_PATTERN, REDIS, SCOPE, error_responses, sse
from broker.api.outage import ws_error_frame
from broker.core import auth, errors, runlog
from broker.core.codec import dumps

# the WebSocket route is not in the OpenAPI document (OpenAPI does not describe WebSockets)
router = APIRouter(tags=["events"])
EVENT_ID = {"json_schema_extra": {"pattern": EVENT_ID_PATTERN}}

DEFAULT_KINDS = ("run", "interrupt")


def _sse(eid: str, event: dict[str, Any]) -> str:
    return f"id: {eid}\nevent: {event['type']}\ndata: {dumps({'id': eid, **event})}\n\n"


def sse_hint(error: errors.BrokerError, resume_from: str) -> str:
    """The last SSE event of a stream cut short by an outage or a drain: an ``error``
    event naming where to resume, and ``retry:`` (ms) for EventSource's reconnect."""
    data = {"code": error.code, "message": error.message, "resume_from": resume_from}
    return f"retry: {errors.RETRY_AFTER_S * 1000}\nevent: error\ndata: {dumps(data)}\n\n"


@router.get(
    "/runs/{run_id}/events",
    response_class=StreamingResponse,
    responses={
        200: sse("The run's events: `id`, `event` (its type) and `data`", named=True),
        **error_responses(*SCOPE, REDIS, errors.RunNotFound, errors.InvalidCursor),
    },
)
async def run_events(
    run_id: str,
    request: Request,
    store: StoreDep,
    hub: HubDep,
    settings: SettingsDep,
    principal: Reader,
    last_event_id: Annotated[str | None, Header(**EVENT_ID)] = None,
    since: Annotated[str | None, Query(alias="after", **EVENT_ID)] = None,
) -> StreamingResponse:
    """The run's events as SSE: replays after ``Last-Event-ID``, then follows live.

    Browsers' EventSource cannot send headers: pass the key as ``?api_key=``.
    """
    run = await visibility.run(store, principal, run_id)
    sent = last_event_id or since or ""
    if not re.fullmatch(EVENT_ID_PATTERN.strip("^$"), sent):
        raise errors.InvalidCursor(f"{sent!r} is not an event id; send the id of an event")
    cursor = sent or "0"
    if run.status.terminal:
        # a finished run whose terminal event was trimmed must not wait forever
        ends = await runlog.last_id(store.r, store.keys.run_events(run_id))
        if ends == "0" or not after(ends, cursor if cursor != "0" else "0-0"):
            return StreamingResponse(iter(()), media_type="text/event-stream")

    async def body() -> AsyncIterator[str]:
        last = cursor
        try:
            async for item in follow_run(
                store.r,
                hub,
                store.keys.run_events(run_id),
                runlog.Owner(run.id, run.thread_id, run.agent_id),
                cursor,
                until=TERMINAL_EVENTS,
                queue_max=settings.subscriber_queue_max,
                heartbeat_s=settings.sse_heartbeat_s,
            ):
                if item is None:
                    if await request.is_disconnected():
                        return
                    yield ": keep-alive\n\n"
                    continue
                last = item[0]
                yield _sse(*item)
        except Exception as exc:
            error = errors.unavailable(exc)
            if error is None:
                raise
            yield sse_hint(error, last)

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def ws_filter(
    *,
    agent_id: str | None,
    itype: str | None,
    thread_id: str | None,
    run_id: str | None,
    kinds: tuple[str, ...],
    visible: frozenset[str] | None = None,
) -> Callable[[dict[str, Any]], bool]:
    def match(event: dict[str, Any]) -> bool:
        kind = event["type"].split(".", 1)[0]
        if kind not in kinds:
            return False
        if visible is not None and event.get("agent_id") not in visible:
            return False
        if agent_id and event.get("agent_id") != agent_id:
            return False
        if thread_id and event.get("thread_id") != thread_id:
            return False
        if run_id and event.get("run_id") != run_id:
            return False
        return not itype or (kind == "interrupt" and event.get("data", {}).get("type") == itype)

    return match


@router.websocket("/ws")
async def ws(
    websocket: WebSocket,
    agent_id: str | None = None,
    type: str | None = None,
    thread_id: str | None = None,
    run_id: str | None = None,
    events: str | None = None,
    since: Annotated[str | None, Query(alias="after")] = None,
) -> None:
    """Live run and interrupt events, filtered; ``after=<id>`` resumes without a gap.

    Browsers cannot send headers on a WebSocket: pass the key as ``?api_key=``.
    """
    app = websocket.app
    store, hub, settings = app.state.store, app.state.hub, app.state.settings
    await websocket.accept()
    principal: auth.Principal | None = websocket.scope.get("state", {}).get("principal")
    if principal is None or not principal.allows(auth.READ):
        await websocket.send_text(
            dumps(
                {
                    "type": "error",
                    "code": "forbidden",
                    "message": f"this API key lacks the {auth.READ!r} scope",
                }
            )
        )
        await websocket.close(code=1008)
        return
    kinds = tuple(k.strip() for k in events.split(",")) if events else DEFAULT_KINDS
    if since is not None and since != "$" and not is_stream_id(since):
        await websocket.send_text(
            dumps({"type": "error", "code": "invalid_cursor", "message": f"bad after={since!r}"})
        )
        await websocket.close(code=1008)
        return
    match = ws_filter(
        agent_id=agent_id,
        itype=type,
        thread_id=thread_id,
        run_id=run_id,
        kinds=kinds,
        visible=principal.agents,
    )
    # the position the client has seen: its cursor, or (live only) the stream's end when
    # it subscribed, so an event the hub hands over late is neither lost nor repeated
    last: str | None = (since if since != "0" else "0-0") if since and since != "$" else None
    try:
        sub = await hub.subscribe(match, settings.subscriber_queue_max)
    except Exception as exc:
        await _ws_unavailable(websocket, exc, last)
        return
    receiver = asyncio.create_task(_drain_client(websocket))
    try:
        if last is None:
            last = await last_id(store.r, store.keys.events)
        if since and since != "$":
            oldest = await first_id(store.r, store.keys.events)
            if since not in ("0", "0-0") and oldest and after(oldest, since):
                await websocket.send_text(
                    dumps(
                        {
                            "type": "gap",
                            "message": "events before this id were trimmed",
                            "oldest_id": oldest,
                        }
                    )
                )
            async for eid, event in replay(store.r, store.keys.events, since, match):
                sub.check()
                last = eid
                await websocket.send_text(dumps({"id": eid, **event}))
        await websocket.send_text(dumps({"type": "live", "id": last}))
        while not receiver.done():
            got = await sub.get(settings.sse_heartbeat_s)
            if sub.overflowed:
                await websocket.send_text(
                    dumps(
                        {
                            "type": "error",
                            "code": "slow_consumer",
                            "message": "this client fell too far behind and was dropped; "
                            "reconnect with after=<resume_from> to catch up",
                            "resume_from": last,
                        }
                    )
                )
                await websocket.close(code=1013)
                return
            if got is None:
                continue
            eid, event = got
            if not after(eid, last):
                continue
            last = eid
            await websocket.send_text(dumps({"id": eid, **event}))
    except (WebSocketDisconnect, RuntimeError):
        pass
    except Exception as exc:
        await _ws_unavailable(websocket, exc, last)
    finally:
        hub.unsubscribe(sub)
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await receiver


async def _ws_unavailable(websocket: WebSocket, exc: Exception, last: str | None) -> None:
    """An outage or a drain: an error frame naming where to resume, then close code 1013
    ("try again later"); any other error goes on to the server."""
    error = errors.unavailable(exc)
    if error is None:
        raise exc
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        await websocket.send_text(ws_error_frame(error, last))
        await websocket.close(code=1013, reason=error.code)


async def _drain_client(websocket: WebSocket) -> None:
    """Reads (and ignores) client frames so a disconnect is noticed at once."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            await websocket.receive_text()
