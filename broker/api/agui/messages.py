"""Messages between AG-UI's shape and LangChain's."""

from __future__ import annotations

import json
from typing import Any

from ag_ui.core import (
    AssistantMessage,
    FunctionCall,
    Message,
    SystemMessage,
    ToolCall,
    ToolMessage,
    UserMessage,
)
from langchain_core.messages import BaseMessage

from broker.core import errors


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else str(content)


def to_agui_messages(messages: list[BaseMessage]) -> list[Message]:
    """The thread's LangChain messages as AG-UI messages (for MESSAGES_SNAPSHOT)."""
    out: list[Message] = []
    for m in messages:
        mid = m.id or ""
        if m.type == "human":
            out.append(UserMessage(id=mid, content=_text(m.content)))
        elif m.type == "system":
            out.append(SystemMessage(id=mid, content=_text(m.content)))
        elif m.type == "ai":
            calls = [
                ToolCall(
                    id=c.get("id") or "",
                    function=FunctionCall(name=c["name"], arguments=json.dumps(c["args"])),
                )
                for c in getattr(m, "tool_calls", None) or []
            ]
            out.append(
                AssistantMessage(id=mid, content=_text(m.content) or None, tool_calls=calls or None)
            )
        elif m.type == "tool":
            out.append(
                ToolMessage(
                    id=mid,
                    content=_text(m.content),
                    tool_call_id=getattr(m, "tool_call_id", ""),
                )
            )
    return out


def _arguments(raw: str | None, call_id: str) -> dict[str, Any]:
    """A tool call's arguments: a JSON object, encoded as a string (InvalidRequest if not)."""
    try:
        args = json.loads(raw or "{}")
    except ValueError:
        args = None
    if not isinstance(args, dict):
        raise errors.InvalidRequest(
            f"tool call {call_id!r}: function.arguments must be a JSON object, encoded"
        )
    return args


def new_input_messages(messages: list[Message], known_ids: set[str]) -> list[dict[str, Any]]:
    """The client's messages the thread does not hold yet, as LangChain message dicts.

    AG-UI clients send the whole conversation every time; the thread already has the
    messages the graph wrote, so only the ones it has never seen are new input.
    """
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.id in known_ids:
            continue
        role = getattr(m, "role", None)
        content = getattr(m, "content", None)
        if role == "user":
            out.append({"role": "user", "content": _text(content), "id": m.id})
        elif role in ("system", "developer"):
            out.append({"role": "system", "content": _text(content), "id": m.id})
        elif role == "assistant":
            calls = [
                {
                    "id": c.id,
                    "name": c.function.name,
                    "args": _arguments(c.function.arguments, c.id),
                }
                for c in getattr(m, "tool_calls", None) or []
            ]
            entry: dict[str, Any] = {"role": "assistant", "content": _text(content), "id": m.id}
            if calls:
                entry["tool_calls"] = calls
            out.append(entry)
        elif role == "tool":
            out.append(
                {
                    "role": "tool",
                    "content": _text(content),
                    "tool_call_id": getattr(m, "tool_call_id", ""),
                    "id": m.id,
                }
            )
    return out
