"""Broker run events → AG-UI events, for one streamed response."""

from __future__ import annotations

import json
from typing import Any

from ag_ui.core import (
    BaseEvent,
    EventType,
    TextMessageContentEvent,
    TextMessageEndEvent,
    TextMessageStartEvent,
    ToolCallArgsEvent,
    ToolCallEndEvent,
    ToolCallResultEvent,
    ToolCallStartEvent,
)

from broker.core.codec import iso
from broker.core.records import InterruptRecord


class Translator:
    """Turns message events into AG-UI text and tool-call events, keeping each
    message's start/content/end (and each tool call's start/args/end) balanced."""

    def __init__(self) -> None:
        self.open_text: set[str] = set()
        self.done_text: set[str] = set()
        self.open_calls: set[str] = set()
        self.done_calls: set[str] = set()
        self.call_index: dict[tuple[str, int], str] = {}

    def feed(self, event: dict[str, Any]) -> list[BaseEvent]:
        etype = event["type"]
        data = event.get("data") or {}
        if etype == "message.delta":
            return self._text_delta(data["message_id"], data["delta"])
        if etype == "tool_call.delta":
            return self._call_delta(data)
        if etype == "message.completed":
            return self._completed(data["message"])
        return []

    def close_all(self) -> list[BaseEvent]:
        out: list[BaseEvent] = [
            TextMessageEndEvent(type=EventType.TEXT_MESSAGE_END, message_id=m)
            for m in sorted(self.open_text)
        ]
        out += [
            ToolCallEndEvent(type=EventType.TOOL_CALL_END, tool_call_id=c)
            for c in sorted(self.open_calls)
        ]
        self.done_text |= self.open_text
        self.done_calls |= self.open_calls
        self.open_text.clear()
        self.open_calls.clear()
        return out

    def _text_delta(self, message_id: str, delta: str) -> list[BaseEvent]:
        if message_id in self.done_text or not delta:
            return []
        out: list[BaseEvent] = []
        if message_id not in self.open_text:
            self.open_text.add(message_id)
            out.append(
                TextMessageStartEvent(
                    type=EventType.TEXT_MESSAGE_START, message_id=message_id, role="assistant"
                )
            )
        out.append(
            TextMessageContentEvent(
                type=EventType.TEXT_MESSAGE_CONTENT, message_id=message_id, delta=delta
            )
        )
        return out

    def _call_delta(self, data: dict[str, Any]) -> list[BaseEvent]:
        message_id = data.get("message_id") or ""
        index = data.get("index") or 0
        call_id = data.get("tool_call_id") or self.call_index.get((message_id, index))
        if not call_id or call_id in self.done_calls:
            return []
        out: list[BaseEvent] = []
        if call_id not in self.open_calls:
            if not data.get("name"):
                return []
            self.open_calls.add(call_id)
            self.call_index[(message_id, index)] = call_id
            out.append(
                ToolCallStartEvent(
                    type=EventType.TOOL_CALL_START,
                    tool_call_id=call_id,
                    tool_call_name=data["name"],
                    parent_message_id=message_id or None,
                )
            )
        if data.get("args_delta"):
            out.append(
                ToolCallArgsEvent(
                    type=EventType.TOOL_CALL_ARGS, tool_call_id=call_id, delta=data["args_delta"]
                )
            )
        return out

    def _completed(self, message: dict[str, Any]) -> list[BaseEvent]:
        mid = message.get("id") or ""
        out: list[BaseEvent] = []
        if message["type"] == "ai":
            content = message.get("content")
            text = content if isinstance(content, str) else ""
            if mid in self.open_text:
                self.open_text.discard(mid)
                self.done_text.add(mid)
                out.append(TextMessageEndEvent(type=EventType.TEXT_MESSAGE_END, message_id=mid))
            elif mid not in self.done_text and text:
                # the model did not stream: send the whole message at once
                out += self._text_delta(mid, text)
                self.open_text.discard(mid)
                self.done_text.add(mid)
                out.append(TextMessageEndEvent(type=EventType.TEXT_MESSAGE_END, message_id=mid))
            for call in message.get("tool_calls") or []:
                cid = call.get("id") or ""
                if cid in self.done_calls or not cid:
                    continue
                if cid not in self.open_calls:
                    out.append(
                        ToolCallStartEvent(
                            type=EventType.TOOL_CALL_START,
                            tool_call_id=cid,
                            tool_call_name=call["name"],
                            parent_message_id=mid or None,
                        )
                    )
                    out.append(
                        ToolCallArgsEvent(
                            type=EventType.TOOL_CALL_ARGS,
                            tool_call_id=cid,
                            delta=json.dumps(call.get("args") or {}),
                        )
                    )
                self.open_calls.discard(cid)
                self.done_calls.add(cid)
                out.append(ToolCallEndEvent(type=EventType.TOOL_CALL_END, tool_call_id=cid))
        elif message["type"] == "tool":
            content = message.get("content")
            out.append(
                ToolCallResultEvent(
                    type=EventType.TOOL_CALL_RESULT,
                    message_id=mid,
                    tool_call_id=message.get("tool_call_id") or "",
                    content=content if isinstance(content, str) else json.dumps(content),
                    role="tool",
                )
            )
        return out


def outcome_interrupt(h: InterruptRecord) -> dict[str, Any]:
    """One entry of ``RUN_FINISHED``'s ``outcome.interrupts``."""
    message = h.value.get("content") if isinstance(h.value, dict) else None
    entry: dict[str, Any] = {
        "id": h.id,
        "reason": h.type or "interrupt",
        "metadata": {
            "interrupt_id": h.lg_id,
            "run_id": h.run_id,
            "agent_id": h.agent_id,
            "value": h.value,
            "fingerprint": h.fingerprint,
        },
    }
    if isinstance(message, str):
        entry["message"] = message
    if isinstance(h.response_schema, dict):
        entry["responseSchema"] = h.response_schema
    if h.expires_at_ms:
        entry["expiresAt"] = iso(h.expires_at_ms)
    return entry
