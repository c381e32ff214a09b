"""The isolation matrix's table: two agents' objects, the principals, a row per route,
and what each call should answer (tests/test_isolation.py); how each route is called is
in tests/isolation_calls.py."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import httpx
import pytest

from broker.core import auth, secret
from tests.flow import start, wait_status
from tests.harness import Broker
from tests.principals import KeySpec, new_key

A, B = "naming", "parallel"
KEY = "any valid key"
KEYS: dict[str, KeySpec] = {
    "a": (new_key("a"), [auth.READ, auth.RESOLVE, auth.RUNS_WRITE, auth.ASSIGN], [A]),
    "b": (new_key("b"), [auth.READ, auth.RESOLVE, auth.RUNS_WRITE, auth.ASSIGN], [B]),
    "full": (new_key("full"), [auth.ADMIN], None),
    "read": (new_key("read"), [auth.READ], None),
    "resolve": (new_key("resolve"), [auth.RESOLVE], None),
    "nonadmin": (new_key("nonadmin"), [auth.READ, auth.RESOLVE, auth.RUNS_WRITE], None),
}
WHO = ("none", "unknown", "unscoped", "a", "b", "full")
# the key that lacks a route's scope, and nothing else
UNSCOPED = {
    KEY: "resolve",
    auth.READ: "resolve",
    auth.RESOLVE: "read",
    auth.RUNS_WRITE: "read",
    auth.ASSIGN: "nonadmin",
    auth.ADMIN: "nonadmin",
}
# the agents each principal may read ("unscoped" is a key not limited to agents)
SEES = {"a": {A}, "b": {B}, "full": {A, B}, "unscoped": {A, B}, "none": set(), "unknown": set()}
OWN = {"a": A, "b": B}
LINK_SECRET = secret.token()


def key_name(who: str, scope: str) -> str | None:
    if who in ("none", "unknown"):
        return who
    return UNSCOPED[scope] if who == "unscoped" else who


@dataclass
class Objects:
    """One agent's run stopped on its interrupts, and what only its readers may see."""

    agent: str
    run: str
    thread: str
    interrupts: list[str]
    secret: str
    question: str

    def private(self) -> list[str]:
        return [self.run, self.thread, *self.interrupts, self.secret, self.question]


@dataclass
class World:
    """The broker, A's and B's shared objects, and what the call being made uses."""

    broker: Broker
    objects: dict[str, Objects]
    webhook: str
    fresh: dict[str, Objects] = field(default_factory=dict)
    """Objects made for one call that succeeds in changing them (the shared ones stay)."""
    hook: str = ""
    """The subscription this call names: the shared one, or a fresh one to change."""
    last_headers: httpx.Headers = field(default_factory=httpx.Headers)
    """The headers of the last response."""


QUESTION = {A: "please approve", B: "approve the budget"}


def waiting(client: httpx.Client, agent: str) -> Objects:
    """A new run of ``agent`` stopped on its interrupts (naming: one, parallel: two)."""
    text = f"secret-{agent}-{uuid.uuid4().hex}"
    run = start(client, agent, {"messages": [{"role": "user", "content": text}]})
    n = 2 if agent == B else 1
    state = wait_status(client, run["run_id"], "interrupted", pending=n)
    return Objects(
        agent, run["run_id"], run["thread_id"], state["pending_interrupts"], text, QUESTION[agent]
    )


# a subscription no event matches, so nothing is ever sent to its (closed) port
SILENT_HOOK = {"url": "http://127.0.0.1:9/hook", "agents": ["nobody"]}


# -- the table ------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """How a route is called and what it answers. ``scope`` None: an open route."""

    scope: str | None
    targets: tuple[str, ...] = ("-",)
    ok: int = 200
    not_found: str | None = None
    writes: bool = False
    unlimited: bool = False
    """Only keys not limited to agents (metrics cover every agent)."""
    scope_after_lookup: bool = False
    """The scope is checked after the id is found (answers: refusals are audited)."""


IDS = ("A", "B", "missing")
HOOK_IDS = ("hook", "missing")
LINK_TOKENS = ("valid", "tampered", "resigned", "missing", "choice")
OPEN = Row(scope=None)
LG_RUNS = "/langgraph/threads/{thread_id}/runs"
LG_STARTS = tuple(f"{LG_RUNS}{tail}" for tail in ("", "/wait", "/stream"))
ROWS: dict[tuple[str, str], Row] = {
    ("GET", "/agents"): Row(KEY),
    ("POST", "/runs"): Row(auth.RUNS_WRITE, IDS, 202, "thread_not_found", writes=True),
    ("GET", "/runs"): Row(auth.READ, IDS),
    ("GET", "/runs/{run_id}"): Row(auth.READ, IDS, not_found="run_not_found"),
    ("POST", "/runs/{run_id}/cancel"): Row(
        auth.RUNS_WRITE, IDS, not_found="run_not_found", writes=True
    ),
    ("GET", "/runs/{run_id}/events"): Row(auth.READ, IDS, not_found="run_not_found"),
    ("GET", "/interrupts"): Row(auth.READ, IDS),
    ("GET", "/interrupts/{interrupt_id}"): Row(auth.READ, IDS, not_found="interrupt_not_found"),
    ("GET", "/interrupts/{interrupt_id}/audit"): Row(
        auth.READ, IDS, not_found="interrupt_not_found"
    ),
    ("POST", "/interrupts/{interrupt_id}/resolve"): Row(
        auth.RESOLVE, IDS, not_found="interrupt_not_found", writes=True, scope_after_lookup=True
    ),
    # answers each id as the single resolve does, inside a 200 (tests/test_isolation.py)
    ("POST", "/interrupts/resolve"): Row(
        auth.RESOLVE, IDS, not_found="interrupt_not_found", writes=True, scope_after_lookup=True
    ),
    # nothing is held in an undo window here: a caller that may withdraw gets 409 not_held
    ("POST", "/interrupts/{interrupt_id}/withdraw"): Row(
        auth.RESOLVE, IDS, 409, "interrupt_not_found", scope_after_lookup=True
    ),
    ("POST", "/interrupts/{interrupt_id}/assign"): Row(
        auth.ASSIGN, IDS, not_found="interrupt_not_found", writes=True
    ),
    ("WS", "/ws"): Row(auth.READ, IDS),
    ("POST", "/agui/{agent_id}"): Row(
        auth.RUNS_WRITE, IDS, not_found="thread_not_found", writes=True
    ),
    ("POST", "/langgraph/assistants/search"): Row(auth.READ),
    ("GET", "/langgraph/assistants/{assistant_id}"): Row(
        auth.READ, IDS, not_found="agent_not_found"
    ),
    ("POST", "/langgraph/threads"): Row(auth.RUNS_WRITE, writes=True),
    ("POST", "/langgraph/threads/search"): Row(auth.READ, IDS),
    ("GET", "/langgraph/threads/{thread_id}"): Row(auth.READ, IDS, not_found="thread_not_found"),
    ("GET", "/langgraph/threads/{thread_id}/state"): Row(
        auth.READ, IDS, not_found="thread_not_found"
    ),
    # Agent Inbox's ignore: ends the thread's run
    ("POST", "/langgraph/threads/{thread_id}/state"): Row(
        auth.RUNS_WRITE, IDS, not_found="thread_not_found", writes=True
    ),
    **{
        ("POST", f"{LG_RUNS}{tail}"): Row(auth.RUNS_WRITE, IDS, 200, "thread_not_found", True)
        for tail in ("", "/wait", "/stream")
    },
    ("GET", f"{LG_RUNS}/{{run_id}}"): Row(auth.READ, IDS, not_found="run_not_found"),
    ("GET", f"{LG_RUNS}/{{run_id}}/join"): Row(auth.READ, IDS, not_found="run_not_found"),
    ("POST", f"{LG_RUNS}/{{run_id}}/cancel"): Row(
        auth.RUNS_WRITE, IDS, not_found="run_not_found", writes=True
    ),
    ("GET", "/links/{token}"): Row(None, LINK_TOKENS),
    ("POST", "/links/{token}"): Row(None, LINK_TOKENS[1:], writes=True),
    ("POST", "/admin/webhooks"): Row(auth.ADMIN, ok=201, writes=True),
    ("GET", "/admin/webhooks"): Row(auth.ADMIN),
    ("GET", "/admin/webhooks/{sid}"): Row(auth.ADMIN, HOOK_IDS, not_found="webhook_not_found"),
    ("PATCH", "/admin/webhooks/{sid}"): Row(
        auth.ADMIN, HOOK_IDS, not_found="webhook_not_found", writes=True
    ),
    ("DELETE", "/admin/webhooks/{sid}"): Row(
        auth.ADMIN, HOOK_IDS, 204, "webhook_not_found", writes=True
    ),
    ("GET", "/admin/webhooks/{sid}/deliveries"): Row(
        auth.ADMIN, HOOK_IDS, not_found="webhook_not_found"
    ),
    ("GET", "/metrics"): Row(auth.READ, unlimited=True),
    # signed by Slack, no API key; Slack is off in this world (404 slack_off)
    ("POST", "/slack/interactivity"): Row(None, ok=404),
    ("GET", "/healthz"): OPEN,
    ("GET", "/readyz"): OPEN,
    ("GET", "/auth/config"): OPEN,
    ("GET", "/.well-known/jwks.json"): OPEN,
    ("GET", "/"): OPEN,
    ("GET", "/favicon.ico"): OPEN,
    ("GET", "/openapi.json"): OPEN,
    ("GET", "/docs"): OPEN,
    ("GET", "/docs/oauth2-redirect"): OPEN,
    ("GET", "/redoc"): OPEN,
    ("MOUNT", "/static"): OPEN,
}
BULK = "/interrupts/resolve"
SINGLE = "/interrupts/{interrupt_id}/resolve"
LINK_PAGES = {"valid": 200, "tampered": 404, "resigned": 404, "missing": 404, "choice": 404}


def target_agent(target: str) -> str | None:
    return {"A": A, "B": B}.get(target)


def expect(method: str, path: str, row: Row, who: str, target: str) -> tuple[int, str | None]:
    """The status and error code of one call."""
    if path == BULK and who not in ("none", "unknown"):
        # the request is 200; its one result is what the single answer would get
        return expect(method, SINGLE, ROWS[(method, SINGLE)], who, target)
    if row.scope is None:
        return (LINK_PAGES[target] if path.startswith("/links") else row.ok), None
    if who in ("none", "unknown"):
        return 401, "unauthorized"
    if who == "unscoped" and row.scope != KEY:
        if row.scope_after_lookup and target == "missing":
            return 404, row.not_found
        return 403, "forbidden"
    if row.scope == auth.ADMIN and who in ("a", "b"):
        return 403, "forbidden"  # an admin key cannot be limited to agents
    if row.unlimited and who in ("a", "b"):
        return 403, "forbidden"
    agent = target_agent(target)
    if path in ("/runs", "/agui/{agent_id}", *LG_STARTS) and method == "POST":
        # a thread: the key runs its own agent on A's thread, B's thread or a new one
        own = OWN.get(who, A)
        agui = path == "/agui/{agent_id}"
        if agent is None:
            return (200 if agui else row.ok), None
        if agent not in SEES[who]:
            return 404, "thread_not_found"
        if agent != own:
            return 409, "thread_agent_mismatch"
        # its own thread: busy with the waiting run (REST), or shown as it stands (AG-UI)
        return (200, None) if agui else (409, "thread_busy")
    if target == "missing" and row.not_found:
        return 404, row.not_found
    if agent is not None and row.not_found and agent not in SEES[who]:
        return 404, row.not_found
    return row.ok, None


CASES = [
    pytest.param(method, path, who, target, id=f"{method} {path} {who} {target}")
    for (method, path), row in ROWS.items()
    for who in WHO
    for target in row.targets
]
