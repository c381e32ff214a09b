"""The asyncio I/O of the two live-event followers (their bookkeeping: _follow.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from interrupt_broker_client._follow import Follower, SSEDecoder
from interrupt_broker_client._sync_streams import STREAM_READ_TIMEOUT_S
from interrupt_broker_client.errors import Unavailable, from_response
from interrupt_broker_client.models import Event


async def run_events(
    http: httpx.AsyncClient, path: str, follower: Follower
) -> AsyncIterator[Event]:
    """A run's SSE, reconnecting with ``Last-Event-ID`` until its terminal event."""
    timeout = httpx.Timeout(http.timeout.connect, read=STREAM_READ_TIMEOUT_S)
    while True:
        follower.connected()
        headers = {"Last-Event-ID": follower.last} if follower.last else {}
        try:
            async with http.stream("GET", path, headers=headers, timeout=timeout) as r:
                if r.status_code >= 400:
                    await r.aread()
                    error = from_response(r)
                    if not isinstance(error, Unavailable):
                        raise error
                    await asyncio.sleep(follower.failed(error))
                    continue
                decoder = SSEDecoder()
                async for chunk in r.aiter_bytes():
                    for message in decoder.feed(chunk):
                        event = follower.take_sse(message)
                        if event is not None:
                            yield event
                        if follower.finished:
                            return
        except httpx.TransportError as exc:
            await asyncio.sleep(follower.failed(exc))
            continue
        if follower.ended():
            return
        await asyncio.sleep(follower.failed())


async def ws_events(
    url_from: Callable[[str | None], str], headers: dict[str, str], follower: Follower
) -> AsyncIterator[Event]:
    """``WS /ws`` frames as events, reconnecting with ``after=`` the last one seen."""
    while True:
        follower.connected()
        try:
            async with connect(url_from(follower.last), additional_headers=headers) as ws:
                async for message in ws:
                    event = follower.take_frame(json.loads(message))
                    if event is not None:
                        yield event
        except (OSError, WebSocketException) as exc:
            await asyncio.sleep(follower.failed(exc))
            continue
        await asyncio.sleep(follower.failed())
