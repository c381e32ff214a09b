"""A graph that asks one question per step, for as many steps as its input says."""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class LoopState(TypedDict, total=False):
    steps: int
    done: int
    last: Any


def ask(state: LoopState) -> dict[str, Any]:
    n = state.get("done", 0)
    answer = interrupt({"type": "ask", "content": f"step {n}"})
    return {"done": n + 1, "last": answer}


def more(state: LoopState) -> str:
    return "ask" if state.get("done", 0) < state.get("steps", 1) else END


def _build() -> Any:
    g = StateGraph(LoopState)
    g.add_node("ask", ask)
    g.add_edge(START, "ask")
    g.add_conditional_edges("ask", more, ["ask", END])
    return g.compile()


loop = _build()
