"""Graphs only the dashboard tests register: a review whose actions allow different
decisions, an answer schema with a keyword the page leaves to the broker, and an approval
for the people its input names."""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class AskState(TypedDict, total=False):
    answer: Any


def _asks(value: Any, **kwargs: Any) -> Any:
    def node(state: AskState) -> dict[str, Any]:
        return {"answer": interrupt(value, **kwargs)}

    g = StateGraph(AskState)
    g.add_node("ask", node)
    g.add_edge(START, "ask")
    g.add_edge("ask", END)
    return g.compile()


# HumanInTheLoopMiddleware's request shape, two actions: the second may not be edited
review = _asks(
    {
        "action_requests": [
            {
                "name": "send_email",
                "args": {"to": "a@example.com", "subject": "Hello"},
                "description": "Sending an email needs approval",
            },
            {"name": "delete_file", "args": {"path": "/srv/report.pdf"}, "description": "Delete"},
        ],
        "review_configs": [
            {"action_name": "send_email", "allowed_decisions": ["approve", "edit", "reject"]},
            {"action_name": "delete_file", "allowed_decisions": ["approve", "reject"]},
        ],
    }
)
# uniqueItems is checked by the broker, not by the page's small validator
TAGS_SCHEMA = {
    "type": "object",
    "properties": {"tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}},
    "required": ["tags"],
}
tagged = _asks({"type": "tags", "content": "Which tags?"}, response_schema=TAGS_SCHEMA)


class AssignedState(TypedDict, total=False):
    assignees: list[str]
    content: str
    answer: Any


def _ask_assignees(state: AssignedState) -> dict[str, Any]:
    value: dict[str, Any] = {"type": "approval", "content": state.get("content", "please approve")}
    if state.get("assignees"):
        value["assignees"] = state["assignees"]
    return {"answer": interrupt(value)}


_g = StateGraph(AssignedState)
_g.add_node("ask", _ask_assignees)
_g.add_edge(START, "ask")
_g.add_edge("ask", END)
# an approval asked of the people in the run's input ("assignees": ["user:…", "group:…"])
asked_of = _g.compile()
