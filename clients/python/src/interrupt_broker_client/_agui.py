"""The AG-UI endpoint, ``POST /agui/{agent_id}``, mixed into ``Client`` and
``AsyncClient``: a ``RunAgentInput`` in, its AG-UI events out as they arrive.

The request is sent when iteration starts and is never sent again by itself: it may
start a run or answer an interrupt. A refusal before the stream (no key, a missing
scope, an unknown agent, a bad body) raises the broker's error; trouble after it
started is a ``RUN_ERROR`` event (``redis_unavailable`` and ``shutting_down`` mean: send
the same request again, it shows where the thread stands).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import httpx

from interrupt_broker_client._calls import _seg
from interrupt_broker_client._follow import SSEDecoder
from interrupt_broker_client._sync_streams import STREAM_READ_TIMEOUT_S
from interrupt_broker_client.errors import from_response
from interrupt_broker_client.models import AguiEvent, RunAgentInput

ACCEPT = {"Accept": "text/event-stream"}


def agui_path(agent_id: str) -> str:
    return f"/agui/{_seg(agent_id)}"


def agui_body(run_input: RunAgentInput) -> dict[str, Any]:
    """The body as sent: ``runId`` made when absent."""
    body: dict[str, Any] = dict(run_input)
    body.setdefault("runId", str(uuid.uuid4()))
    return body


def stream_timeout(http: httpx.Client | httpx.AsyncClient) -> httpx.Timeout:
    # the broker sends a keep-alive in quiet spells: this long without a byte is a dead one
    return httpx.Timeout(http.timeout.connect, read=STREAM_READ_TIMEOUT_S)


def decode(decoder: SSEDecoder, chunk: bytes) -> list[AguiEvent]:
    return [json.loads(message.data) for message in decoder.feed(chunk)]


class AguiRoutes:
    """The AG-UI endpoint, blocking."""

    if TYPE_CHECKING:
        _http: httpx.Client

    def agui(self, agent_id: str, run_input: RunAgentInput) -> Iterator[AguiEvent]:
        """Posts ``run_input`` to ``POST /agui/{agent_id}`` and yields the AG-UI events
        (``RUN_STARTED`` first; ``RUN_FINISHED`` or ``RUN_ERROR`` last) as they come."""
        path, body = agui_path(agent_id), agui_body(run_input)
        timeout = stream_timeout(self._http)
        with self._http.stream("POST", path, json=body, headers=ACCEPT, timeout=timeout) as r:
            if r.status_code >= 400:
                r.read()
                raise from_response(r)
            decoder = SSEDecoder()
            for chunk in r.iter_bytes():
                yield from decode(decoder, chunk)


class AsyncAguiRoutes:
    """The AG-UI endpoint, on asyncio: ``agui`` is an async iterator."""

    if TYPE_CHECKING:
        _http: httpx.AsyncClient

    async def agui(self, agent_id: str, run_input: RunAgentInput) -> AsyncIterator[AguiEvent]:
        path, body = agui_path(agent_id), agui_body(run_input)
        timeout = stream_timeout(self._http)
        async with self._http.stream("POST", path, json=body, headers=ACCEPT, timeout=timeout) as r:
            if r.status_code >= 400:
                await r.aread()
                raise from_response(r)
            decoder = SSEDecoder()
            async for chunk in r.aiter_bytes():
                for event in decode(decoder, chunk):
                    yield event
