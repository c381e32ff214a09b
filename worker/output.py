"""A JSON summary of a graph's final state, as GET /runs/{run_id} shows it."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import BaseMessage

from broker.core.codec import dumps, loads

MAX_MESSAGES = 50


def message_view(m: BaseMessage) -> dict[str, Any]:
    view: dict[str, Any] = {"id": m.id, "type": m.type, "content": m.content}
    if m.name:
        view["name"] = m.name
    tool_calls = getattr(m, "tool_calls", None)
    if tool_calls:
        view["tool_calls"] = [
            {"id": c.get("id"), "name": c["name"], "args": c["args"]} for c in tool_calls
        ]
    tool_call_id = getattr(m, "tool_call_id", None)
    if tool_call_id:
        view["tool_call_id"] = tool_call_id
    return view


def summarize(values: Any) -> dict[str, Any]:
    """The last messages, the last assistant reply, and every other state key as JSON."""
    if not isinstance(values, dict):
        return {"values": loads(dumps(values))}
    out: dict[str, Any] = {}
    messages = values.get("messages")
    if isinstance(messages, list):
        msgs = [m for m in messages if isinstance(m, BaseMessage)]
        out["messages"] = [message_view(m) for m in msgs[-MAX_MESSAGES:]]
        last_ai = next((m for m in reversed(msgs) if m.type == "ai" and m.content), None)
        out["final_message"] = str(last_ai.text) if last_ai is not None else None
    rest = {k: v for k, v in values.items() if k != "messages"}
    out["values"] = loads(dumps(rest))
    return out
