"""The Agent Server's message stream modes, from a run's message events, as they happen.

The worker logs a model's tokens as ``message.delta`` and ``tool_call.delta`` events and
each message a node adds to the state as ``message.completed`` (worker/stream.py). A
stream asked for:

- ``messages-tuple`` gets ``messages`` events, ``[message chunk, metadata]``, as
  LangGraph's ``stream_mode="messages"`` yields them: each delta as an ``AIMessageChunk``,
  and each whole message that came without deltas (tool results, replies not streamed).
  A streamed message's whole copy is left out, since a client adds chunks of one id up;
- ``messages`` gets ``messages/metadata`` when a message first shows,
  ``messages/partial`` with the message so far after each delta, and
  ``messages/complete`` with the whole message.
"""

from __future__ import annotations

from typing import Any

from broker.core.codec import dumps
from broker.core.records import RunRecord

MODES = frozenset({"messages", "messages-tuple"})
DELTAS = frozenset({"message.delta", "tool_call.delta"})


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {dumps(data)}\n\n"


class MessageStream:
    """The SSE frames of the message modes asked for, one event at a time."""

    def __init__(self, modes: frozenset[str], run: RunRecord) -> None:
        self.tuples = "messages-tuple" in modes
        self.partials = "messages" in modes
        self.run = run
        self.streamed: set[str] = set()
        """The messages that came as deltas."""
        self.so_far: dict[str, dict[str, Any]] = {}
        """Each message being streamed: its chunks added up (``messages`` mode's partials)."""

    def metadata(self, node: Any) -> dict[str, Any]:
        run = self.run
        return {
            "langgraph_node": node,
            "run_id": run.id,
            "thread_id": run.thread_id,
            "graph_id": run.agent_id,
            "assistant_id": run.agent_id,
        }

    def frames(self, event: dict[str, Any]) -> list[str]:
        kind, data = event["type"], event.get("data") or {}
        if kind in DELTAS and data.get("message_id"):
            return self._delta(kind, data)
        if kind == "message.completed" and isinstance(data.get("message"), dict):
            return self._whole(data["message"], data.get("node"))
        return []

    def _delta(self, kind: str, data: dict[str, Any]) -> list[str]:
        mid, node = str(data["message_id"]), data.get("node")
        chunk: dict[str, Any] = {
            "type": "AIMessageChunk",
            "id": mid,
            "content": data.get("delta", "") if kind == "message.delta" else "",
            "tool_call_chunks": [],
        }
        if kind == "tool_call.delta":
            chunk["tool_call_chunks"] = [
                {
                    "type": "tool_call_chunk",
                    "id": data.get("tool_call_id"),
                    "name": data.get("name"),
                    "args": data.get("args_delta", ""),
                    "index": data.get("index"),
                }
            ]
        self.streamed.add(mid)
        out: list[str] = []
        if self.tuples:
            out.append(sse("messages", [chunk, self.metadata(node)]))
        if self.partials:
            first = mid not in self.so_far
            whole = self.so_far.setdefault(mid, {"type": "ai", "id": mid, "content": ""})
            whole["content"] += chunk["content"]
            for part in chunk["tool_call_chunks"]:
                _add_tool_call(whole, part)
            if first:
                out.append(sse("messages/metadata", {mid: {"metadata": self.metadata(node)}}))
            out.append(sse("messages/partial", [dict(whole)]))
        return out

    def _whole(self, view: dict[str, Any], node: Any) -> list[str]:
        message = _message(view)
        mid = str(message.get("id") or "")
        out: list[str] = []
        if self.tuples and mid not in self.streamed:
            out.append(sse("messages", [message, self.metadata(node)]))
        if self.partials:
            if mid not in self.streamed:
                out.append(sse("messages/metadata", {mid: {"metadata": self.metadata(node)}}))
            self.so_far.pop(mid, None)
            out.append(sse("messages/complete", [message]))
        return out


def _add_tool_call(whole: dict[str, Any], part: dict[str, Any]) -> None:
    calls: list[dict[str, Any]] = whole.setdefault("tool_call_chunks", [])
    for call in calls:
        if call.get("index") == part.get("index"):
            call["args"] = (call.get("args") or "") + (part.get("args") or "")
            return
    calls.append(dict(part))


def _message(view: dict[str, Any]) -> dict[str, Any]:
    """A logged message (worker/output.py ``message_view``) as LangChain serializes one."""
    message = dict(view)
    if message.get("tool_calls"):
        message["tool_calls"] = [{**c, "type": "tool_call"} for c in message["tool_calls"]]
    return message
