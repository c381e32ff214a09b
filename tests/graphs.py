"""Graphs only the tests register: they count, in Redis, how often code runs.

The counters live in Redis so a test can read what happened inside a worker process.
"""

from __future__ import annotations

import os
from typing import Any, TypedDict

import redis
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


def _bump(thread_id: str, what: str) -> None:
    prefix = os.environ["BROKER_KEY_PREFIX"]
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        client.incr(f"{prefix}:test:{what}:{thread_id}")
    finally:
        client.close()


class CountState(TypedDict, total=False):
    answer: Any
    after: int


def _ask(state: CountState, config: RunnableConfig) -> dict[str, Any]:
    answer = interrupt({"type": "approval", "content": "count me"})
    _bump(config["configurable"]["thread_id"], "answered")
    return {"answer": answer}


def _after(state: CountState, config: RunnableConfig) -> dict[str, Any]:
    _bump(config["configurable"]["thread_id"], "after")
    return {"after": 1}


def _build() -> Any:
    g = StateGraph(CountState)
    g.add_node("ask", _ask)
    g.add_node("after", _after)
    g.add_edge(START, "ask")
    g.add_edge("ask", "after")
    g.add_edge("after", END)
    return g.compile()


counter = _build()


def _boom(state: CountState) -> dict[str, Any]:
    raise ValueError("the node failed on purpose")


def _build_failing() -> Any:
    g = StateGraph(CountState)
    g.add_node("boom", _boom)
    g.add_edge(START, "boom")
    g.add_edge("boom", END)
    return g.compile()


failing = _build_failing()
