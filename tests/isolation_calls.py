"""How each route of the isolation matrix is called (tests/isolation.py has the table),
and what a call's answer must not show."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import connect

from broker.core import links
from tests.isolation import (
    BULK,
    KEY,
    KEYS,
    LG_STARTS,
    LINK_SECRET,
    OWN,
    SEES,
    SILENT_HOOK,
    A,
    Objects,
    Row,
    World,
    key_name,
)
from tests.principals import headers, presented, query


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
    if path == BULK:
        return Call(method, path, hdrs, json={"ids": [o.interrupts[0]], "value": True})
    if path.startswith("/interrupts/"):
        body = {"value": True} if path.endswith("/resolve") else None
        if path.endswith("/assign"):
            body = {"assignees": []}  # leaves it open to every later answer of the matrix
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
    if path.startswith("/langgraph/"):
        return langgraph_call(method, path, hdrs, o, own)
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


def langgraph_call(method: str, path: str, hdrs: dict[str, str], o: Objects, own: str) -> Call:
    """The LangGraph API's routes (broker/api/langgraph/), as the SDK calls them."""
    url = path.format(assistant_id=o.agent, thread_id=o.thread, run_id=o.run)
    if path in LG_STARTS:
        # a thread that does not exist yet is made by the run, as a missing one is by POST /runs
        body = {"assistant_id": own, "input": {}, "if_not_exists": "create"}
        return Call(method, url, hdrs, json=body)
    if path.endswith("/search"):
        return Call(method, url, hdrs, json={"ids": [o.thread]} if "threads" in path else {})
    if path == "/langgraph/threads":
        return Call(method, url, hdrs, json={})
    if method == "POST" and path.endswith("/state"):
        return Call(method, url, hdrs, json={"values": None, "as_node": "__end__"})
    return Call(method, url, hdrs)


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
    # the OpenAPI document is the same for everyone; its request example names a demo
    # agent, which is no object of any agent's
    names = call.url not in STATIC_DOCUMENTS
    out = []
    for o in [*world.objects.values(), *world.fresh.values()]:
        if o.agent not in sees:
            out += [s for s in [*o.private(), *([o.agent] if names else [])] if s and s not in sent]
    return out


STATIC_DOCUMENTS = ("/openapi.json",)


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
    return world.broker.url.replace("http://", "ws://") + "/ws?" + str(httpx.QueryParams(q))
