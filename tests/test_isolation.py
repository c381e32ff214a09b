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
from dataclasses import replace
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from starlette.routing import Mount, WebSocketRoute
from websockets.asyncio.client import connect

from broker.api.app import create_app
from broker.core import auth
from broker.core.settings import Settings
from tests.harness import Broker
from tests.isolation import (
    BULK,
    CASES,
    KEYS,
    LINK_SECRET,
    ROWS,
    SEES,
    SILENT_HOOK,
    A,
    B,
    World,
    expect,
    key_name,
    target_agent,
    waiting,
)
from tests.isolation_calls import (
    LIST_FILTERS,
    Call,
    build,
    hidden_strings,
    ids_for,
    send,
    ws_frames,
    ws_url,
)
from tests.principals import headers, keys_json
from tests.state import settle, snapshot

pytestmark = pytest.mark.slow


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
            # the path as documented: a path convertor's name left out
            path = str(getattr(route, "path_format", ctx.path))
            routes |= {(m, path) for m in ctx.methods if m != "HEAD"}
    assert routes == set(ROWS), "each route needs a row in ROWS (and each row a route)"


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
    if path == BULK and got == 200:
        # one id answered in bulk: its result stands for the response
        [item] = json.loads(body)["results"]
        got = item["status"]
        body = json.dumps({"error": item["error"]} if "error" in item else item["interrupt"])
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


# -- WebSocket ----------------------------------------------------------------------


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


def test_a_limited_keys_inbox_etag_shows_nothing_of_other_agents(
    world: World, redis_url: str
) -> None:
    """An inbox polled with If-None-Match stays 304 for a key limited to A while B's
    interrupts come and go, and changes when A's do."""
    settle(redis_url, world.broker.env["BROKER_KEY_PREFIX"])
    with (
        httpx.Client(base_url=world.broker.url, headers=headers(KEYS, "a")) as a,
        httpx.Client(base_url=world.broker.url, headers=headers(KEYS, "full")) as full,
    ):
        newest = {"order": "desc"}

        def poll(client: httpx.Client, etag: str) -> httpx.Response:
            return client.get("/interrupts", params=newest, headers={"If-None-Match": etag})

        etag = a.get("/interrupts", params=newest).headers["etag"]
        every = full.get("/interrupts", params=newest).headers["etag"]
        waiting(full, B)
        assert poll(full, every).status_code == 200  # a full key's inbox did change
        assert poll(a, etag).status_code == 304
        mine = waiting(full, A)
        again = poll(a, etag)
        assert again.status_code == 200
        assert again.json()["items"][0]["id"] == mine.interrupts[0]
        assert poll(a, again.headers["etag"]).status_code == 304


ANSWERS = {
    "valid": {"json": {"value": True}},
    "idempotent": {"json": {"value": True}, "headers": {"Idempotency-Key": "k-1"}},
    "malformed": {"content": b'{"value": ', "headers": {"content-type": "application/json"}},
    "not json": {"content": b'{"value": 1}', "headers": {"content-type": "text/plain"}},
    "oversized": {"json": {"value": "x" * (70 * 1024)}},
}


@pytest.mark.parametrize("answer", list(ANSWERS))
def test_an_answer_to_another_agents_interrupt_is_refused_as_for_a_missing_one(
    world: World, redis_url: str, answer: str
) -> None:
    """Whatever the body, a key limited to A gets for B's interrupt exactly what it gets
    for an id that never existed, and leaves no trace (not even an audit entry)."""
    prefix = world.broker.env["BROKER_KEY_PREFIX"]
    b = world.objects["B"]
    missing = str(uuid.uuid4())
    settle(redis_url, prefix)
    before = snapshot(redis_url, prefix)
    with httpx.Client(base_url=world.broker.url, headers=headers(KEYS, "a"), timeout=30) as a:
        got = {
            iid: a.post(f"/interrupts/{iid}/resolve", **ANSWERS[answer])
            for iid in (b.interrupts[0], missing)
        }
    foreign, absent = got[b.interrupts[0]], got[missing]
    assert foreign.status_code == absent.status_code >= 400, foreign.text
    assert foreign.json()["error"]["code"] == absent.json()["error"]["code"]
    assert foreign.text.replace(b.interrupts[0], missing) == absent.text
    for s in [*b.private(), B]:
        assert s not in foreign.text or s == b.interrupts[0]
    assert snapshot(redis_url, prefix) == before
