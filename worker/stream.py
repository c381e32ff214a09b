"""Runs a graph step by step and turns its output into run events.

``messages`` mode gives token deltas where the model streams; ``updates`` mode gives each
whole message as a node adds it to the state (tool calls, tool results, replies).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from langchain_core.messages import AIMessageChunk, BaseMessage

from worker.output import message_view

log = logging.getLogger("worker.stream")

Publish = Callable[..., Awaitable[None]]


async def run_graph(graph: Any, command: Any, config: dict[str, Any], publish: Publish) -> None:
    """Executes one attempt of the graph, publishing message events as they happen."""
    async for mode, payload in graph.astream(
        command, config, stream_mode=["messages", "updates"], durability="sync"
    ):
        try:
            if mode == "messages":
                await _on_chunk(payload, publish)
            elif mode == "updates":
                await _on_update(payload, publish)
        except Exception:
            # events are best effort; the run's state lives in the checkpoint
            log.warning("could not publish a message event", exc_info=True)


async def _on_chunk(payload: Any, publish: Publish) -> None:
    chunk, meta = payload
    if not isinstance(chunk, AIMessageChunk):
        return
    node = meta.get("langgraph_node") if isinstance(meta, dict) else None
    text = chunk.text if isinstance(chunk.content, str | list) else ""
    if text:
        await publish("message.delta", message_id=chunk.id, delta=str(text), node=node)
    for tc in chunk.tool_call_chunks or []:
        await publish(
            "tool_call.delta",
            message_id=chunk.id,
            tool_call_id=tc.get("id"),
            name=tc.get("name"),
            args_delta=tc.get("args") or "",
            index=tc.get("index"),
            node=node,
        )


async def _on_update(payload: Any, publish: Publish) -> None:
    if not isinstance(payload, dict):
        return
    for node, update in payload.items():
        if node.startswith("__") or not isinstance(update, dict):
            continue
        messages = update.get("messages")
        if isinstance(messages, BaseMessage):
            messages = [messages]
        if not isinstance(messages, list):
            continue
        for m in messages:
            if isinstance(m, BaseMessage):
                await publish("message.completed", message=message_view(m), node=node)
