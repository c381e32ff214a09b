"""Scheduling: an agent whose schedule_meeting tool lets a person pick the time slot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.tools import tool
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import interrupt

from agent.models import get_chat_model

SYSTEM_PROMPT = (
    "You help people book meetings. To book one, call schedule_meeting with the topic and "
    "the attendee; a person then picks the time. Report the tool's result to the user."
)
# (days from today, hour in UTC) of each offered slot.
_SLOT_TIMES = ((1, 10), (1, 14), (2, 10), (2, 16))
_DAY_WORDS = {1: "Tomorrow", 2: "In two days"}


def meeting_slots(now: datetime | None = None) -> list[dict[str, str]]:
    """The four slots offered, relative to ``now``: ``[{"label": ..., "iso": ...}]``."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    slots = []
    for days, hour in _SLOT_TIMES:
        day = today + timedelta(days=days)
        start = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
        label = f"{_DAY_WORDS[days]} ({start:%a %d %b}) at {start:%H:%M} UTC"
        slots.append({"label": label, "iso": start.isoformat()})
    return slots


def meeting_outcome(answer: Any, topic: str, slots: list[dict[str, str]]) -> str:
    """The tool's sentence for an answer to the slot interrupt."""
    if isinstance(answer, dict):
        if answer.get("cancelled") is True:
            return f"User cancelled. Meeting NOT scheduled: {topic}"
        time, label = answer.get("chosen_time"), answer.get("chosen_label")
        if time or label:
            if not label:
                label = next((s["label"] for s in slots if s["iso"] == time), time)
            return f"Meeting scheduled for {label}: {topic}"
    return f"User did not pick a time. Meeting NOT scheduled: {topic}"


@tool
def schedule_meeting(topic: str, attendee: str) -> str:
    """Book a meeting or call with an attendee about a topic; a person picks the time slot."""
    slots = meeting_slots()
    answer = interrupt(
        {
            "type": "slots",
            "content": f"Pick a time for '{topic}' with {attendee}.",
            "topic": topic,
            "attendee": attendee,
            "slots": slots,
        }
    )
    return meeting_outcome(answer, topic, slots)


def build_graph(model: BaseChatModel | None = None) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The scheduling agent, driven by ``model`` (default: ``get_chat_model()``)."""
    return create_agent(
        model if model is not None else get_chat_model(),
        tools=[schedule_meeting],
        system_prompt=SYSTEM_PROMPT,
        name="scheduling",
    )


graph = build_graph()
