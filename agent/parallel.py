"""Parallel approvals: two branches ask for approval in the same step; a join sums up."""

from __future__ import annotations

from typing import Annotated, Any, NotRequired

from langchain_core.messages import AIMessage, AnyMessage
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import interrupt
from typing_extensions import TypedDict

from agent._answers import describe_verdict, is_approval

BUDGET = {"type": "approval", "content": "approve the budget"}
LAUNCH_DATE = {"type": "approval", "content": "approve the launch date"}


def _merge(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    return {**left, **right}


class ParallelState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    # Each branch adds its own answer; the reducer lets both write in the same step.
    answers: Annotated[dict[str, Any], _merge]
    approved: NotRequired[bool]


def approve_budget(state: ParallelState) -> dict[str, Any]:
    return {"answers": {"budget": interrupt(BUDGET)}}


def approve_launch_date(state: ParallelState) -> dict[str, Any]:
    return {"answers": {"launch_date": interrupt(LAUNCH_DATE)}}


def join(state: ParallelState) -> dict[str, Any]:
    answers = state["answers"]
    budget, launch_date = answers["budget"], answers["launch_date"]
    summary = f"Budget: {describe_verdict(budget)}. Launch date: {describe_verdict(launch_date)}."
    return {
        "messages": [AIMessage(content=summary)],
        "approved": is_approval(budget) and is_approval(launch_date),
    }


graph = (
    StateGraph(ParallelState)
    .add_node(approve_budget)
    .add_node(approve_launch_date)
    .add_node(join)
    .add_edge(START, "approve_budget")
    .add_edge(START, "approve_launch_date")
    .add_edge(["approve_budget", "approve_launch_date"], "join")
    .compile(name="parallel")
)
