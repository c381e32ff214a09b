"""Isolation on every endpoint: every route x every kind of principal x foreign ids.

A real API process and worker with auth on. Agent A (`naming`) and agent B (`parallel`)
each have a run stopped on its interrupts, with a secret in its conversation. Every route
of the app (the table is checked against ``app.routes``, so a new route without a row
fails) is called by: no key, an unknown key, a key without the scope the route needs, a
key limited to A, a key limited to B, and a full key; with A's ids, B's ids and ids that
do not exist. Each call gets the expected status and JSON error shape, its body holds
nothing of an agent the key may not see, and a refused write changes no key under the
prefix.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from starlette.routing import Mount, WebSocketRoute
from websockets.asyncio.client import connect

from broker.api.app import create_app
from broker.core import auth, links, secret
from broker.core.settings import Settings
from tests.flow import start, wait_status
from tests.harness import Broker
from tests.principals import KeySpec, headers, keys_json, new_key, presented, query
from tests.state import settle, snapshot

pytestmark = pytest.mark.slow

A, B = "naming", "parallel"
KEY = "any valid key"
KEYS: dict[str, KeySpec] = {
    "a": (new_key("a"), [auth.READ, auth.RESOLVE, auth.RUNS_WRITE], [A]),
    "b": (new_key("b"), [auth.READ, auth.RESOLVE, auth.RUNS_WRITE], [B]),
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
    broker: Broker
    objects: dict[str, Objects]
    webhook: str
    fresh: dict[str, Objects] = field(default_factory=dict)
    hook: str = ""
    last_headers: httpx.Headers = field(default_factory=httpx.Headers)
    """The subscription this call names: the shared one, or a fresh one to change."""


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


@pytest.fixture(scope="module")
def world(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    b = Broker(
        redis_url,
        f"ibt{uuid.uuid4().hex[:10]}",
        tmp_path_factory.mktemp("isolation"),
        BROKER_AUTH="on",
        BROKER_API_KEYS=keys_json(KEYS),
        BROKER_LINK_SECRET=LINK_SECRET,
        BROKER_WEBHOOK_ALLOW_PRIVATE="1",
    )
    with (
        b.serving(),
        httpx.Client(base_url=b.url, timeout=30, headers=headers(KEYS, "full")) as full,
    ):
        hook = full.post("/admin/webhooks", json=SILENT_HOOK)
        assert hook.status_code == 201, hook.text
        yield World(b, {"A": waiting(full, A), "B": waiting(full, B)}, hook.json()["id"])


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
    ("WS", "/ws"): Row(auth.READ, IDS),
    ("POST", "/agui/{agent_id}"): Row(
        auth.RUNS_WRITE, IDS, not_found="thread_not_found", writes=True
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
    ("GET", "/healthz"): OPEN,
    ("GET", "/readyz"): OPEN,
    ("GET", "/"): OPEN,
    ("GET", "/favicon.ico"): OPEN,
    ("GET", "/openapi.json"): OPEN,
    ("GET", "/docs"): OPEN,
    ("GET", "/docs/oauth2-redirect"): OPEN,
    ("GET", "/redoc"): OPEN,
    ("MOUNT", "/static"): OPEN,
}
LINK_PAGES = {"valid": 200, "tampered": 400, "resigned": 400, "missing": 404, "choice": 400}


def test_every_route_of_the_app_has_a_row() -> None:
    app = create_app(Settings(auth="off", redis_url="redis://127.0.0.1:1/0"))
    routes: set[tuple[str, str]] = set()
    for ctx in iter_route_contexts(app.routes):
        route = ctx.original_route
        if isinstance(route, Mount):
            routes.add(("MOUNT", route.path))
        elif isinstance(route, WebSocketRoute) or ctx.methods is None:
            routes.add(("WS", str(ctx.path)))
        else:
            routes |= {(m, str(ctx.path)) for m in ctx.methods if m != "HEAD"}
    assert routes == set(ROWS), "each route needs a row in ROWS (and each row a route)"


def target_agent(target: str) -> str | None:
    return {"A": A, "B": B}.get(target)


def expect(method: str, path: str, row: Row, who: str, target: str) -> tuple[int, str | None]:
    """The status and error code of one call."""
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
    if path in ("/runs", "/agui/{agent_id}") and method == "POST":
        # a thread: the key runs its own agent on A's thread, B's thread or a new one
        own = OWN.get(who, A)
        if agent is None:
            return row.ok if path == "/runs" else 200, None
        if agent not in SEES.get(who, {A, B}):
            return 404, "thread_not_found"
        if agent != own:
            return 409, "thread_agent_mismatch"
        # its own thread: busy with the waiting run (REST), or shown as it stands (AG-UI)
        return (409, "thread_busy") if path == "/runs" else (200, None)
    if target == "missing" and row.not_found:
        return 404, row.not_found
    if agent is not None and row.not_found and agent not in SEES.get(who, {A, B}):
        return 404, row.not_found
    return row.ok, None


CASES = [
    pytest.param(method, path, who, target, id=f"{method} {path} {who} {target}")
    for (method, path), row in ROWS.items()
    for who in WHO
    for target in row.targets
]


# -- calling a route ------------------------------------------------------------------


@dataclass
class Call:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    json: Any = None
    data: dict[str, str] | None = None
    stream: bool = False


def ids_for(world: World, target: str) -> Objects:
    if target not in ("A", "B"):
        missing = str(uuid.uuid4())
        return Objects("nobody", missing, missing, [missing], "", "")
    return world.fresh.get(target) or world.objects[target]


def link_token(world: World, target: str) -> str:
    key = LINK_SECRET.encode()
    b = world.objects["B"]
    expires = 2**42

    def signed(interrupt_id: str, choice: str) -> str:
        return links.sign(key, links.Claims(interrupt_id, choice, expires, uuid.uuid4().hex))

    valid = signed(b.interrupts[0], "approve")
    version, payload, signature = valid.split(".")
    if target == "valid":
        return valid
    if target == "tampered":
        return f"{version}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    if target == "resigned":
        # B's token with A's interrupt id put in: the signature no longer matches
        other = links.sign(
            key, links.Claims(world.objects["A"].interrupts[0], "approve", expires, "n")
        )
        return f"{version}.{other.split('.')[1]}.{signature}"
    if target == "missing":
        return signed(str(uuid.uuid4()), "approve")
    return signed(b.interrupts[0], "slot-3")  # a choice B's interrupt does not offer


LIST_FILTERS = {
    "/runs": lambda o: [{"thread_id": o.thread}, {"agent_id": o.agent}],
    "/interrupts": lambda o: [{"thread_id": o.thread}, {"run_id": o.run}, {"agent_id": o.agent}],
}


def build(world: World, method: str, path: str, row: Row, who: str, target: str) -> Call:
    name = key_name(who, row.scope or KEY)
    hdrs = headers(KEYS, name) if name else {}
    o = ids_for(world, target)
    own = OWN.get(who, A)
    if path == "/runs" and method == "POST":
        thread = o.thread if target != "missing" else str(uuid.uuid4())
        body = {"agent_id": own, "input": {}, "thread_id": thread}
        return Call(method, path, hdrs, json=body)
    if path in ("/runs", "/interrupts"):
        return Call(method, path, hdrs, params=LIST_FILTERS[path](o)[0])
    if path.startswith("/runs/{run_id}"):
        url = path.format(run_id=o.run)
        if path.endswith("/events"):
            # EventSource cannot send headers: the key rides in the query
            return Call(method, url, params=query(KEYS, name) if name else {}, stream=True)
        return Call(method, url, hdrs)
    if path.startswith("/interrupts/"):
        body = {"value": True} if path.endswith("/resolve") else None
        return Call(method, path.format(interrupt_id=o.interrupts[0]), hdrs, json=body)
    if path == "/agui/{agent_id}":
        thread = o.thread if target != "missing" else str(uuid.uuid4())
        body = {
            "threadId": thread,
            "runId": str(uuid.uuid4()),
            "messages": [{"id": f"m-{uuid.uuid4().hex}", "role": "user", "content": "hello"}],
            "forwardedProps": {"interruptOutcome": True},
        }
        return Call(method, f"/agui/{own}", hdrs | {"Accept": "text/event-stream"}, json=body)
    if path == "/links/{token}":
        token = link_token(world, target)
        if method == "POST":
            return Call(method, f"/links/{token}", hdrs, data={"token": token})
        return Call(method, f"/links/{token}", hdrs)
    if path.startswith("/admin/webhooks"):
        sid = world.hook if target == "hook" else "wh_missing"
        body = {"description": "changed"} if method == "PATCH" else None
        if method == "POST":
            body = SILENT_HOOK
        return Call(method, path.format(sid=sid), hdrs, json=body)
    if path == "/static":
        return Call("GET", "/static/style.css", hdrs)
    return Call(method, path, hdrs)


def send(world: World, call: Call) -> tuple[int, str]:
    """Status and body; a stream is read up to its first event (a live one never ends)."""
    with httpx.Client(base_url=world.broker.url, timeout=60) as client:
        if not call.stream:
            r = client.request(
                call.method,
                call.url,
                headers=call.headers,
                params=call.params,
                json=call.json,
                data=call.data,
            )
            world.last_headers = r.headers
            return r.status_code, r.text
        with client.stream(call.method, call.url, headers=call.headers, params=call.params) as r:
            world.last_headers = r.headers
            if r.status_code != 200:
                return r.status_code, r.read().decode()
            lines = []
            for line in r.iter_lines():
                lines.append(line)
                if line.startswith("data: "):
                    break
            return r.status_code, "\n".join(lines)


def hidden_strings(world: World, who: str, call: Call) -> list[str]:
    """What ``who`` must never read: the objects of every agent it may not see, except
    what it sent itself. Action links take no key: nobody reads anything through one
    but the link's own question."""
    sent = json.dumps([call.url, call.params, call.json, call.data])
    sees = set() if call.url.startswith("/links/") else SEES[who]
    out = []
    for o in [*world.objects.values(), *world.fresh.values()]:
        if o.agent not in sees:
            out += [s for s in [*o.private(), o.agent] if s and s not in sent]
    return out


# -- the matrix -----------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "who", "target"), CASES)
def test_route_answers_each_principal_and_id(
    world: World, redis_url: str, method: str, path: str, who: str, target: str
) -> None:
    row = ROWS[(method, path)]
    status, code = expect(method, path, row, who, target)
    if method == "WS":
        websocket_case(world, who, target, status, code)
        return
    prefix = world.broker.env["BROKER_KEY_PREFIX"]
    world.fresh = {}
    if row.writes and status < 300 and target in ("A", "B"):
        # a write that succeeds changes its target: use a fresh one, keep the shared ones
        with httpx.Client(base_url=world.broker.url, headers=headers(KEYS, "full")) as full:
            world.fresh = {target: waiting(full, target_agent(target) or A)}
    world.hook = world.webhook
    if path.startswith("/admin/webhooks/") and row.writes and status < 300:
        with httpx.Client(base_url=world.broker.url, headers=headers(KEYS, "full")) as full:
            world.hook = full.post("/admin/webhooks", json=SILENT_HOOK).json()["id"]
    call = build(world, method, path, row, who, target)
    settle(redis_url, prefix)
    # a refusal the audit log records by design (a key that sees the interrupt, without
    # the scope); any other refused write must leave every key as it was
    audited = who == "unscoped" and row.scope_after_lookup
    before = snapshot(redis_url, prefix, audit=not audited) if row.writes else None

    got, body = send(world, call)
    if path in LIST_FILTERS and method == "GET":
        # every filter that can name another agent's objects, one request each
        for params in LIST_FILTERS[path](ids_for(world, target))[1:]:
            more = send(world, replace(call, params=params))
            assert more[0] == got, more[1]
            body = f"{body}\n{more[1]}"

    assert got == status, body
    if code is not None:
        error = json.loads(body.split("\n")[0])["error"]
        assert error["code"] == code, body
        assert isinstance(error["message"], str) and error["message"]
    if got == 401:
        assert world.last_headers["www-authenticate"].startswith("Bearer")
    if target == "valid":
        # a valid link is a capability for its one question: its page shows it, no key
        assert world.objects["B"].question in body
    else:
        for s in hidden_strings(world, who, call):
            assert s not in body, f"{who} read {s!r} of an agent it may not see: {body[:2000]}"
    if path in LIST_FILTERS and method == "GET" and got == 200:
        for page in body.split("\n"):
            items = json.loads(page)["items"]
            assert {i["agent_id"] for i in items} <= SEES[who]
            if target_agent(target) in SEES[who]:
                assert items, "the key sees its own objects"  # the filter is not vacuous
    if before is not None and (got >= 400 or path.startswith("/links")):
        assert snapshot(redis_url, prefix, audit=not audited) == before


# -- WebSocket ------------------------------------------------------------------------


async def ws_frames(url: str) -> tuple[list[dict[str, Any]], int | None]:
    """Frames up to ``live`` (or an error and the close code)."""
    frames: list[dict[str, Any]] = []
    async with connect(url) as ws:
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
            frames.append(frame)
            if frame["type"] in ("live", "error"):
                break
        if frame["type"] == "error":
            try:
                await asyncio.wait_for(ws.recv(), 30)
            except Exception:
                pass
        return frames, ws.close_code


def ws_url(world: World, name: str | None, **params: str) -> str:
    key = presented(KEYS, name) if name else None
    q = params | ({"api_key": key} if key else {})
    return world.broker.url.replace("http://", "ws://") + "/ws?" + httpx.QueryParams(q).__str__()


def websocket_case(world: World, who: str, target: str, status: int, code: str | None) -> None:
    """Replays from the start, filtered by the target's run, thread and agent."""
    o = ids_for(world, target)
    name = key_name(who, auth.READ)
    every = "run,interrupt,message,tool_call"  # the conversation too, not only the defaults
    for filt in ({"run_id": o.run}, {"thread_id": o.thread}, {"agent_id": o.agent}, {}):
        frames, close = asyncio.run(ws_frames(ws_url(world, name, after="0", events=every, **filt)))
        last = frames[-1]
        if status >= 400:
            assert (last["type"], last["code"], close) == ("error", code, 1008)
            assert len(frames) == 1
            continue
        assert last["type"] == "live"
        events = frames[:-1]
        assert {e["agent_id"] for e in events} <= SEES[who]
        if target_agent(target) in SEES[who]:
            assert events, "the key sees its own agent's events"
        elif filt:
            assert events == []
        text = json.dumps(frames)
        for s in hidden_strings(world, who, Call("WS", "/ws", params=filt)):
            assert s not in text, f"{who} received {s!r} of an agent it may not see"


def test_a_key_limited_to_a_never_receives_b_events_live(world: World) -> None:
    """Live, not replayed: B's events between two of A's never reach a key limited to A."""

    async def scenario() -> tuple[list[dict[str, Any]], str]:
        async with (
            connect(ws_url(world, "a")) as ws,
            httpx.AsyncClient(
                base_url=world.broker.url, headers=headers(KEYS, "full"), timeout=30
            ) as full,
        ):
            assert json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] == "live"
            b_run = (await full.post("/runs", json={"agent_id": B, "input": {}})).json()
            await full.post(f"/runs/{b_run['run_id']}/cancel")
            # A's run comes after B's two events in the one stream, so once A's arrives
            # every B event before it has been through the socket's filter
            a_run = (await full.post("/runs", json={"agent_id": A, "input": {}})).json()
            got = []
            while not got or got[-1].get("run_id") != a_run["run_id"]:
                got.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
            await full.post(f"/runs/{a_run['run_id']}/cancel")
            return got, b_run["run_id"]

    got, b_run = asyncio.run(scenario())
    assert {f["agent_id"] for f in got} == {A}
    assert b_run not in json.dumps(got)


# -- AG-UI: another agent's thread ----------------------------------------------------


def agui_body(thread: str, **extra: Any) -> dict[str, Any]:
    return {
        "threadId": thread,
        "runId": str(uuid.uuid4()),
        "messages": [{"id": f"m-{uuid.uuid4().hex}", "role": "user", "content": "hello"}],
        "forwardedProps": {"interruptOutcome": True},
        **extra,
    }


def test_agui_refuses_a_thread_of_another_agent_before_reading_it(
    world: World, redis_url: str
) -> None:
    """A key limited to A names B's thread on A's endpoint, to start a run, to resume
    B's interrupt, or to resume the one pending: a plain 404 before any stream, no
    history, nothing started or answered; B's own key still runs on its thread."""
    prefix = world.broker.env["BROKER_KEY_PREFIX"]
    with httpx.Client(base_url=world.broker.url, headers=headers(KEYS, "full")) as full:
        at_rest = waiting(full, B)
        assert full.post(f"/runs/{at_rest.run}/cancel").status_code == 200
        busy = waiting(full, B)
    settle(redis_url, prefix)
    before = snapshot(redis_url, prefix)
    resume = [{"interruptId": busy.interrupts[0], "status": "resolved", "payload": True}]
    attempts = [
        agui_body(at_rest.thread),
        agui_body(busy.thread),
        agui_body(busy.thread, resume=resume),
        agui_body(busy.thread, forwardedProps={"command": {"resume": True}}),
    ]
    with httpx.Client(base_url=world.broker.url, headers=headers(KEYS, "a"), timeout=60) as a:
        for body in attempts:
            r = a.post(f"/agui/{A}", json=body, headers={"Accept": "text/event-stream"})
            assert r.status_code == 404, r.text
            assert r.headers["content-type"] == "application/json"
            assert r.json()["error"]["code"] == "thread_not_found"
            for s in [*at_rest.private(), *busy.private(), B]:
                assert s not in r.text or s == body["threadId"]
        # B's own endpoint does not exist for this key
        r = a.post(f"/agui/{B}", json=agui_body(busy.thread))
        assert r.status_code == 404 and r.json()["error"]["code"] == "agent_not_found"
    assert snapshot(redis_url, prefix) == before  # no audit entry either
    with httpx.Client(base_url=world.broker.url, headers=headers(KEYS, "b")) as b:
        r = b.post("/runs", json={"agent_id": B, "input": {}, "thread_id": at_rest.thread})
        assert r.status_code == 202, r.text
        assert b.get(f"/interrupts/{busy.interrupts[0]}").json()["status"] == "pending"


def test_a_thread_stays_with_the_agent_that_started_it(world: World) -> None:
    """A key that sees both agents gets 409 naming the thread's agent, over REST and
    AG-UI alike; the thread's own agent goes on."""
    with httpx.Client(base_url=world.broker.url, headers=headers(KEYS, "full")) as full:
        b = waiting(full, B)
        full.post(f"/runs/{b.run}/cancel")
        r = full.post("/runs", json={"agent_id": A, "input": {}, "thread_id": b.thread})
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "thread_agent_mismatch"
        assert r.json()["error"]["thread_agent_id"] == B
        r = full.post(f"/agui/{A}", json=agui_body(b.thread))
        assert r.status_code == 409 and r.json()["error"]["code"] == "thread_agent_mismatch"
        assert [
            x["agent_id"] for x in full.get("/runs", params={"thread_id": b.thread}).json()["items"]
        ] == [B]
        r = full.post("/runs", json={"agent_id": B, "input": {}, "thread_id": b.thread})
        assert r.status_code == 202, r.text
