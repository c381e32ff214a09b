"""The blocking I/O of the two live-event followers (their bookkeeping: _follow.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import httpx
from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

from interrupt_broker_client._follow import Follower, SSEDecoder
from interrupt_broker_client.errors import Unavailable, from_response
from interrupt_broker_client.models import Event

STREAM_READ_TIMEOUT_S = 60.0
"""A live stream sends a keep-alive every 15 s: this long without a byte is a dead one."""


def run_events(http: httpx.Client, path: str, follower: Follower) -> Iterator[Event]:
    """A run's SSE, reconnecting with ``Last-Event-ID`` until its terminal event."""
    timeout = httpx.Timeout(http.timeout.connect, read=STREAM_READ_TIMEOUT_S)
    while True:
        follower.connected()
        headers = {"Last-Event-ID": follower.last} if follower.last else {}
        try:
            with http.stream("GET", path, headers=headers, timeout=timeout) as r:
                if r.status_code >= 400:
                    r.read()
                    error = from_response(r)
                    if not isinstance(error, Unavailable):
                        raise error
                    time.sleep(follower.failed(error))
                    continue
                decoder = SSEDecoder()
                for chunk in r.iter_bytes():
                    for message in decoder.feed(chunk):
                        event = follower.take_sse(message)
                        if event is not None:
                            yield event
                        if follower.finished:
                            return
        except httpx.TransportError as exc:
            time.sleep(follower.failed(exc))
            continue
        if follower.ended():
            return
        time.sleep(follower.failed())


def ws_events(
    url_from: Callable[[str | None], str], headers: dict[str, str], follower: Follower
) -> Iterator[Event]:
    """``WS /ws`` frames as events, reconnecting with ``after=`` the last one seen."""
    while True:
        follower.connected()
        try:
            with connect(url_from(follower.last), additional_headers=headers) as ws:
                for message in ws:
                    event = follower.take_frame(json.loads(message))
                    if event is not None:
                        yield event
        except (OSError, WebSocketException) as exc:
            time.sleep(follower.failed(exc))
            continue
        time.sleep(follower.failed())
