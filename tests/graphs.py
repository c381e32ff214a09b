"""Graphs only the tests register: they count, in Redis, how often code runs.

The counters live in Redis so a test can read what happened inside a worker process.
"""

from __future__ import annotations

import os
import time
from typing import Annotated, Any, TypedDict

import redis
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


def _counts() -> redis.Redis:
    """Where the counters live: the broker's Redis, or ``TEST_COUNTS_URL`` (a server
    outside a failover under test, whose counts must not fail over with it)."""
    return redis.Redis.from_url(os.environ.get("TEST_COUNTS_URL") or os.environ["REDIS_URL"])


def _counter_key(prefix: str, what: str, thread_id: str) -> str:
    return f"{prefix}:test:{what}:{thread_id}"


def _bump(thread_id: str, what: str) -> int:
    """Counts one more ``what``; returns the count."""
    prefix = os.environ["BROKER_KEY_PREFIX"]
    client = _counts()
    try:
        return int(client.incr(_counter_key(prefix, what, thread_id)))
    finally:
        client.close()


def count(url: str, prefix: str, what: str, thread_id: str) -> int:
    """How often ``what`` ran on ``thread_id``, read by a test from the Redis at ``url``."""
    client = redis.Redis.from_url(url)
    try:
        return int(client.get(_counter_key(prefix, what, thread_id)) or 0)
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


def _gate(thread_id: str) -> None:
    """Blocks until the test pushes to the gate list, so it can kill the worker here."""
    prefix = os.environ["BROKER_KEY_PREFIX"]
    client = _counts()
    try:
        client.blpop([f"{prefix}:test:gate:{thread_id}"], timeout=120)
    finally:
        client.close()


def _ask_then_wait(state: CountState, config: RunnableConfig) -> dict[str, Any]:
    answer = interrupt({"type": "approval", "content": "answer, then kill my worker"})
    thread_id = config["configurable"]["thread_id"]
    _bump(thread_id, "answered")
    _gate(thread_id)
    return {"answer": answer}


def _build_gated() -> Any:
    g = StateGraph(CountState)
    g.add_node("ask", _ask_then_wait)
    g.add_node("after", _after)
    g.add_edge(START, "ask")
    g.add_edge("ask", "after")
    g.add_edge("after", END)
    return g.compile()


gated = _build_gated()


class FanState(TypedDict, total=False):
    answers: Annotated[dict[str, Any], lambda a, b: {**a, **b}]


def _branch(name: str) -> Any:
    def node(state: FanState, config: RunnableConfig) -> dict[str, Any]:
        answer = interrupt({"type": "approval", "content": f"branch {name}"})
        _bump(config["configurable"]["thread_id"], f"branch-{name}")
        return {"answers": {name: answer}}

    return node


def _join(state: FanState, config: RunnableConfig) -> dict[str, Any]:
    _bump(config["configurable"]["thread_id"], "join")
    return {}


def _build_fanout() -> Any:
    g = StateGraph(FanState)
    g.add_node("a", _branch("a"))
    g.add_node("b", _branch("b"))
    g.add_node("join", _join)
    g.add_edge(START, "a")
    g.add_edge(START, "b")
    g.add_edge(["a", "b"], "join")
    g.add_edge("join", END)
    return g.compile()


fanout = _build_fanout()


def recipient_key(prefix: str, thread_id: str) -> str:
    """Where a test sets the recipient the ``shifting`` graph asks about."""
    return _counter_key(prefix, "recipient", thread_id)


def _shifting(state: FanState, config: RunnableConfig) -> dict[str, Any]:
    """Asks to send mail to the recipient a test set, read each time the node runs (as
    a tool call a model rewrote between executions would be)."""
    thread_id = config["configurable"]["thread_id"]
    client = _counts()
    try:
        got = client.get(recipient_key(os.environ["BROKER_KEY_PREFIX"], thread_id))
    finally:
        client.close()
    to = got.decode() if got else "person1@example.com"
    answer = interrupt({"type": "approval", "content": f"send the report to {to}?", "to": to})
    return {"answers": {"shifting": {"answer": answer, "to": to}}}


def _build_shifting() -> Any:
    """Two branches pause in one step; answering ``a`` runs the step again, and the
    ``shifting`` branch then asks something else than it asked before."""
    g = StateGraph(FanState)
    g.add_node("a", _branch("a"))
    g.add_node("shifting", _shifting)
    g.add_edge(START, "a")
    g.add_edge(START, "shifting")
    g.add_edge(["a", "shifting"], END)
    return g.compile()


shifting = _build_shifting()


# Answer contracts and deadlines, declared by the interrupt itself.
PROFILE_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name"],
    "additionalProperties": False,
}
EXPIRY_DEFAULT = {"approved": False, "by": "default"}


def _asks(value: dict[str, Any], **kwargs: Any) -> Any:
    def node(state: CountState, config: RunnableConfig) -> dict[str, Any]:
        answer = interrupt(value, **kwargs)
        _bump(config["configurable"]["thread_id"], "answered")
        return {"answer": answer}

    g = StateGraph(CountState)
    g.add_node("ask", node)
    g.add_edge(START, "ask")
    g.add_edge("ask", END)
    return g.compile()


# LangGraph's own response_schema (a JSON Schema dict, which LangGraph does not check)
typed = _asks({"type": "profile", "content": "who are you?"}, response_schema=PROFILE_SCHEMA)
# a responseSchema key in the value
declared = _asks({"type": "profile", "content": "who are you?", "responseSchema": PROFILE_SCHEMA})
# who may answer, declared by the interrupt itself (docs/design.md, "Assignment")
assigned = _asks(
    {
        "type": "approval",
        "content": "finance signs this",
        "assignees": ["group:finance", "user:Lead@Example.com"],
        "watchers": ["user:auditor"],
    }
)
# a declaration naming nobody valid (the kind is missing): assigned to nobody, not anyone
misassigned = _asks({"type": "approval", "content": "who signs?", "assignees": ["finance"]})
# decided by votes (docs/design.md, "Quorum and chains"): two of finance, with the
# first rejection deciding or with two rejections needed; legal then the CFO; and a
# rule on a question votes cannot decide (an ask), which fails closed
quorum = _asks(
    {
        "type": "approval",
        "content": "two of finance sign this",
        "approval": {"quorum": 2, "of": "group:finance"},
    }
)
quorum_rejects = _asks(
    {
        "type": "approval",
        "content": "two of finance decide either way",
        "approval": {"quorum": 2, "of": "group:finance", "reject": "quorum"},
    }
)
chained = _asks(
    {
        "type": "approval",
        "content": "legal, then the CFO",
        "approval": {"chain": ["group:legal", "user:CFO@example.com"]},
    }
)
misruled = _asks(
    {"type": "ask", "content": "what now?", "approval": {"quorum": 2, "of": "group:finance"}}
)
# a deadline with a default answer, and one without (the run fails at the deadline)
expiring = _asks(
    {
        "type": "approval",
        "content": "approve within a second",
        "expires_in": 1,
        "default": EXPIRY_DEFAULT,
    }
)
expiring_fail = _asks({"type": "approval", "content": "answer or fail", "expires_in": 1})
# a deadline far enough away that a page shows the question first; a test moves it
expiring_later = _asks({"type": "approval", "content": "answer or fail", "expires_in": 3600})
# an escalation ladder (docs/design.md, "Escalation ladders"): a reminder, then the
# managers, then the default answer
escalating = _asks(
    {
        "type": "approval",
        "content": "answer, or it goes up the ladder",
        "assignees": ["user:first@example.com"],
        "escalation": [
            {"after_s": 0.4, "remind": True},
            {"after_s": 0.8, "assign": ["group:managers"]},
            {"after_s": 1.2, "default": EXPIRY_DEFAULT},
        ],
    }
)


# A slow node: it counts when it begins and when it has run to completion, so a test can
# tell how often it ran, and how often it ran to its end.
class SlowState(TypedDict, total=False):
    seconds: float
    done: int


def _slow(state: SlowState, config: RunnableConfig) -> dict[str, Any]:
    thread_id = config["configurable"]["thread_id"]
    _bump(thread_id, "began")
    time.sleep(float(state.get("seconds", 5)))
    _bump(thread_id, "done")
    return {"done": 1}


def _build_slow() -> Any:
    g = StateGraph(SlowState)
    g.add_node("slow", _slow)
    g.add_edge(START, "slow")
    g.add_edge("slow", END)
    return g.compile()


slow = _build_slow()
