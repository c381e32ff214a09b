"""Runs a graph step by step and turns its output into run events.

``messages`` mode gives token deltas where the model streams; ``updates`` mode gives each
whole message as a node adds it to the state (tool calls, tool results, replies).
Deltas of one message (or one tool call) that arrive within ``DELTA_WINDOW_S`` of its
first go out as one event: a fast model costs one event per window, not per token,
and a reader waits at most that long for text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessageChunk, BaseMessage

# the key under which LangGraph's ``updates`` stream reports the interrupts of a step
from langgraph._internal._constants import INTERRUPT

from broker.core import telemetry
from worker.output import message_view

log = logging.getLogger("worker.stream")

Publish = Callable[..., Awaitable[None]]
DELTA_WINDOW_S = 0.05


class _Deltas:
    """The delta being gathered: its event type, what it belongs to, and its data."""

    def __init__(self, publish: Publish) -> None:
        self.publish = publish
        self.key: tuple[Any, ...] | None = None
        self.etype = ""
        self.field = ""
        self.data: dict[str, Any] = {}
        self.timer: asyncio.TimerHandle | None = None
        self.lock = asyncio.Lock()

    async def add(
        self, etype: str, key: tuple[Any, ...], field: str, text: str, **data: Any
    ) -> None:
        async with self.lock:
            if self.key != key:
                await self._flush()
            if self.key is None:
                self.key, self.etype, self.field = key, etype, field
                self.data = {**data, field: ""}
                loop = asyncio.get_running_loop()
                self.timer = loop.call_later(DELTA_WINDOW_S, self._due)
            self.data[field] += text

    def _due(self) -> None:
        task = asyncio.ensure_future(self.flush())
        task.add_done_callback(_log_failure)

    async def flush(self) -> None:
        async with self.lock:
            await self._flush()

    async def _flush(self) -> None:
        if self.key is None:
            return
        if self.timer is not None:
            self.timer.cancel()
        etype, data = self.etype, self.data
        self.key, self.timer, self.data = None, None, {}
        await self.publish(etype, **data)


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("could not publish a message event", exc_info=task.exception())


@dataclass
class Outcome:
    """Where an attempt stopped, as the graph's own stream said it: the interrupts it
    raised (``stopped`` also at a static breakpoint, which raises none) and its output
    values after the last step."""

    interrupts: list[Any] = field(default_factory=list)
    stopped: bool = False
    values: Any = None


async def run_graph(
    graph: Any, command: Any, config: dict[str, Any], publish: Publish, durability: str
) -> Outcome:
    """Executes one attempt of the graph, publishing message events as they happen."""
    deltas = _Deltas(publish)
    outcome = Outcome()
    modes = ["messages", "updates", "values"]
    # while tracing: a span per task, from LangGraph's task start and result events
    tasks = telemetry.Tasks() if telemetry.ENABLED else None
    try:
        async for mode, payload in graph.astream(
            command,
            config,
            stream_mode=[*modes, "tasks"] if tasks else modes,
            durability=durability,
        ):
            if mode == "tasks":
                if tasks is not None:
                    tasks.event(payload)
                continue
            if mode == "values":
                outcome.values = payload
                continue
            if mode == "updates" and isinstance(payload, dict) and INTERRUPT in payload:
                outcome.stopped = True
                outcome.interrupts.extend(payload[INTERRUPT] or ())
                continue
            try:
                if mode == "messages":
                    await _on_chunk(payload, deltas)
                elif mode == "updates":
                    await deltas.flush()  # a whole message follows its deltas
                    await _on_update(payload, publish)
            except Exception:
                # events are best effort; the run's state lives in the checkpoint
                log.warning("could not publish a message event", exc_info=True)
    finally:
        with contextlib.suppress(Exception):
            await deltas.flush()
    return outcome


async def _on_chunk(payload: Any, deltas: _Deltas) -> None:
    chunk, meta = payload
    if not isinstance(chunk, AIMessageChunk):
        return
    node = meta.get("langgraph_node") if isinstance(meta, dict) else None
    text = chunk.text if isinstance(chunk.content, str | list) else ""
    if text:
        key = ("text", chunk.id, node)
        await deltas.add("message.delta", key, "delta", str(text), message_id=chunk.id, node=node)
    for tc in chunk.tool_call_chunks or []:
        await deltas.add(
            "tool_call.delta",
            ("tool", chunk.id, tc.get("index")),
            "args_delta",
            tc.get("args") or "",
            message_id=chunk.id,
            tool_call_id=tc.get("id"),
            name=tc.get("name"),
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
