"""A one-node approval graph: asks ``approval`` once and echoes the answer into the state.

It imports only langgraph, so ``langgraph dev`` loads this very file from a venv of its
own (bench/_lgdev.py) while the broker serves it as ``approval=bench.approval:graph``.
"""

from __future__ import annotations

from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class ApprovalState(TypedDict, total=False):
    request: str
    answer: Any


def approve(state: ApprovalState) -> dict[str, Any]:
    answer = interrupt({"type": "approval", "content": "approve?"})
    return {"answer": answer}


def _build() -> Any:
    g = StateGraph(ApprovalState)
    g.add_node("approve", approve)
    g.add_edge(START, "approve")
    g.add_edge("approve", END)
    return g.compile()


graph = _build()
