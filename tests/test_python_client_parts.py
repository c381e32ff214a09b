"""The Python client's parts that need no broker: the SSE decoder and the follower's
bookkeeping (clients/python; end to end: tests/test_python_client.py)."""

from __future__ import annotations

import json

import pytest
from interrupt_broker_client import InvalidInput, Retry
from interrupt_broker_client._follow import Follower, SSEDecoder


def test_sse_lines_end_at_lf_or_crlf_only_and_may_split_anywhere() -> None:
    text = 'id: 1-0\r\nevent: run.queued\r\ndata: {"id": "1-0", "note": "a\u2028b"}\r\n\r\n'
    text += ': keep-alive\n\nid: 2-0\nevent: run.started\ndata: {"id": "2-0"}\n\n'
    raw = text.encode()
    decoder = SSEDecoder()
    got = [m for i in range(len(raw)) for m in decoder.feed(raw[i : i + 1])]
    assert [(m.event, m.id) for m in got] == [("run.queued", "1-0"), ("run.started", "2-0")]
    assert json.loads(got[0].data)["note"] == "a\u2028b"


def test_a_follower_hands_each_event_out_once_in_order() -> None:
    follower = Follower("5-0", Retry(attempts=3))
    assert follower.take_event({"id": "4-9", "type": "run.started"}) is None
    assert follower.take_event({"id": "5-0", "type": "run.started"}) is None
    assert follower.take_event({"id": "5-1", "type": "run.resumed"}) is not None
    assert follower.take_event({"id": "5-1", "type": "run.resumed"}) is None
    assert follower.take_event({"id": "10-0", "type": "run.succeeded"}) is not None
    assert follower.finished and follower.last == "10-0"


def test_a_follower_resumes_from_a_hint_and_refuses_a_refusal() -> None:
    follower = Follower(None, Retry(attempts=2))
    follower.connected()
    assert follower.take_frame({"type": "live", "id": "7-0"}) is None
    assert follower.last == "7-0"
    hint = {"type": "error", "code": "shutting_down", "resume_from": "8-0"}
    assert follower.take_frame(hint) is None and follower.last == "8-0"
    assert not follower.ended()
    with pytest.raises(InvalidInput):
        follower.take_frame({"type": "error", "code": "invalid_cursor", "message": "bad"})
    assert follower.failed() > 0
    with pytest.raises(ConnectionError):
        follower.failed()
