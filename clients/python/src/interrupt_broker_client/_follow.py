"""Following live events without missing one: the state both clients share.

The broker gives every event a stream id, a resume cursor: the run's SSE replays what
follows ``Last-Event-ID``, and ``WS /ws`` what follows ``after=``. A follower keeps the
last id it handed out, reconnects from it when a connection drops (or the broker ends a
stream early with a hint naming ``resume_from``: Redis unavailable, the API process
stopping), and drops anything at or before it, so the events seen are the log in order
with no gap and no repeat. The I/O lives in the clients; this is the bookkeeping.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from interrupt_broker_client.errors import from_frame
from interrupt_broker_client.models import TERMINAL_EVENTS, Event
from interrupt_broker_client.retry import Retry


def stream_id(eid: str) -> tuple[int, int]:
    ms, _, seq = eid.partition("-")
    return int(ms), int(seq or 0)


RECONNECT_CODES = frozenset({"slow_consumer", "redis_unavailable", "shutting_down"})
"""WebSocket error frames that end a connection to be made again, not a refusal."""


@dataclass(frozen=True)
class ServerEvent:
    """One SSE message: its ``event`` name, ``id`` and ``data`` text."""

    event: str
    data: str
    id: str | None


class SSEDecoder:
    """SSE bytes in, messages out (comments and ``retry:`` are skipped). Lines end at
    LF or CRLF only, as the SSE format says: JSON data may hold U+2028 and the like,
    which ``str.splitlines`` would break on."""

    def __init__(self) -> None:
        self._buffer = b""
        self._event = "message"
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[ServerEvent]:
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        out = []
        for raw in lines:
            got = self._line(raw.removesuffix(b"\r").decode("utf-8", "replace"))
            if got is not None:
                out.append(got)
        return out

    def _line(self, line: str) -> ServerEvent | None:
        if not line:
            got = ServerEvent(self._event, "\n".join(self._data), self._id) if self._data else None
            self._event, self._data, self._id = "message", [], None
            return got
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        return None


class Follower:
    """The position of one follower, and what to do on each message or failure."""

    def __init__(self, last_event_id: str | None, retry: Retry) -> None:
        self.last = last_event_id
        self.retry = retry
        self.failures = 0
        self.finished = False
        self._seen_now = False
        self._hinted = False

    def connected(self) -> None:
        """A new connection: nothing seen on it yet."""
        self._seen_now = False
        self._hinted = False

    def fresh(self, eid: str) -> bool:
        """True for an event after the last one handed out (a replay may overlap)."""
        return self.last is None or stream_id(eid) > stream_id(self.last)

    def take_event(self, event: Event) -> Event | None:
        """The event to hand out, or None for one already handed out."""
        eid = event.get("id")
        if not eid or not self.fresh(eid):
            return None
        self.last = eid
        self.failures = 0
        self._seen_now = True
        if event.get("type") in TERMINAL_EVENTS:
            self.finished = True
        return event

    def take_sse(self, message: ServerEvent) -> Event | None:
        """A run's SSE message: an event, or the reconnect hint the stream ends with."""
        data: dict[str, Any] = json.loads(message.data)
        if message.event == "error":
            self._hinted = True
            self._resume(data.get("resume_from"))
            return None
        if message.id and "id" not in data:
            data["id"] = message.id
        return self.take_event(data)  # type: ignore[arg-type]

    def take_frame(self, frame: dict[str, Any]) -> Event | None:
        """A ``WS /ws`` frame: an event, or a control frame (``live``, ``gap``,
        ``error``). A refusal (``forbidden``, ``invalid_cursor``) raises."""
        kind = frame.get("type")
        if kind == "live":
            self._resume(frame.get("id"))
            return None
        if kind == "gap":
            return frame  # type: ignore[return-value]
        if kind == "error":
            if "resume_from" in frame or frame.get("code") in RECONNECT_CODES:
                self._hinted = True
                self._resume(frame.get("resume_from"))
                return None
            raise from_frame(frame)
        return self.take_event(frame)  # type: ignore[arg-type]

    def _resume(self, eid: Any) -> None:
        if isinstance(eid, str) and eid and eid != "0" and self.fresh(eid):
            self.last = eid

    def ended(self) -> bool:
        """The server closed a run's stream cleanly: True when the run has nothing more
        (its terminal event seen, or a stream with no events and no hint, which the
        broker sends for a finished run followed past its end)."""
        if self.finished or (not self._seen_now and not self._hinted):
            self.finished = True
            return True
        return False

    def failed(self, error: BaseException | None = None) -> float:
        """One more failed or cut connection: the wait before the next, or the error
        raised once the reconnects in a row are used up."""
        if self._seen_now:
            self.failures = 0
        self.failures += 1
        self._seen_now = False
        if self.failures >= self.retry.attempts:
            if error is not None:
                raise error
            raise ConnectionError("the event stream kept failing")
        retry_after = getattr(error, "retry_after_s", None)
        return self.retry.delay(self.failures, retry_after)
