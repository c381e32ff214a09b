"""The LangGraph Agent Server API under /langgraph, driven by the real ``langgraph-sdk``
client against a real API and worker: run a graph, find the interrupted thread, read
and resume its interrupts, and the broker's refusals as the SDK raises them; and the npm
``@langchain/langgraph-sdk`` client through the scripts in tests/node."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import ConflictError, NotFoundError, UnprocessableEntityError

from tests.flow import answer, wait_status
from tests.graphs import count
from tests.harness import Broker

pytestmark = pytest.mark.slow

NODE_DIR = Path(__file__).parent / "node"
HELLO = {"messages": [{"role": "user", "content": "hi"}]}
APPROVAL = {"type": "approval", "content": "please approve"}
ASK_NAME = {"type": "ask", "content": "Before we start, what would you like to call me?"}


@pytest.fixture
async def lg(broker: Broker) -> AsyncIterator[Any]:
    """The SDK's async client, pointed at the broker's /langgraph."""
    sdk = get_client(url=broker.url + "/langgraph", api_key=None)
    try:
        yield sdk
    finally:
        await sdk.aclose()


def only_interrupt(thread: dict[str, Any]) -> dict[str, Any]:
    """The one pending interrupt of a thread's ``interrupts`` map."""
    found = [i for items in thread["interrupts"].values() for i in items]
    assert len(found) == 1, thread["interrupts"]
    return found[0]


async def test_run_find_read_and_resume_the_naming_agent(lg: Any, broker: Broker) -> None:
    found = await lg.assistants.search(graph_id="naming")
    assert [a["assistant_id"] for a in found] == ["naming"]
    assert (await lg.assistants.get("naming"))["graph_id"] == "naming"

    thread = await lg.threads.create(metadata={"case": "naming"})
    tid = thread["thread_id"]
    assert thread["status"] == "idle"
    stopped = await lg.runs.wait(tid, "naming", input=HELLO)
    assert stopped["__interrupt__"][0]["value"] == APPROVAL

    # the inbox's view: interrupted threads, each with its pending interrupts
    waiting = await lg.threads.search(status="interrupted", metadata={"case": "naming"})
    assert [t["thread_id"] for t in waiting] == [tid]
    first = only_interrupt(waiting[0])
    assert first["value"] == APPROVAL
    assert waiting[0]["metadata"]["graph_id"] == "naming"
    assert waiting[0]["values"]["messages"][0]["content"] == "hi"

    state = await lg.threads.get_state(tid)
    assert state["next"] == ["respond"]
    assert [i["id"] for i in state["interrupts"]] == [first["id"]]
    assert [i["id"] for t in state["tasks"] for i in t["interrupts"]] == [first["id"]]

    # a resume map keyed by the interrupt id; the stream shows the next question
    parts = [
        p
        async for p in lg.runs.stream(
            tid, "naming", command={"resume": {first["id"]: True}}, stream_mode="updates"
        )
    ]
    assert parts[0].event == "metadata"
    asked = [
        p.data["__interrupt__"] for p in parts if p.event == "updates" and "__interrupt__" in p.data
    ]
    assert [a[0]["value"] for a in asked] == [ASK_NAME]

    thread = await lg.threads.get(tid)
    assert thread["status"] == "interrupted"
    second = only_interrupt(thread)
    assert second["value"] == ASK_NAME and second["id"] != first["id"]

    # a plain resume value answers the one pending interrupt
    run = await lg.runs.create(tid, "naming", command={"resume": "Ada"})
    final = await lg.runs.join(tid, run["run_id"])
    assert "__interrupt__" not in final
    assert final["agent_name"] == "Ada"
    assert "Ada" in final["messages"][-1]["content"]
    assert (await lg.runs.get(tid, run["run_id"]))["status"] == "success"
    done = await lg.threads.get(tid)
    assert done["status"] == "idle" and done["interrupts"] == {}
    assert tid not in [t["thread_id"] for t in await lg.threads.search(status="interrupted")]

    # answered through the store: channel langgraph, in the audit log
    with httpx.Client(base_url=broker.url) as api:
        items = api.get("/interrupts", params={"thread_id": tid, "status": "resolved"}).json()
        assert [i["resolution"]["channel"] for i in items["items"]] == ["langgraph"] * 2


async def test_stream_values_shows_each_step_then_the_interrupt(lg: Any, broker: Broker) -> None:
    tid = (await lg.threads.create())["thread_id"]
    parts = [p async for p in lg.runs.stream(tid, "naming", input=HELLO, stream_mode="values")]
    assert parts[0].event == "metadata"
    values = [p.data for p in parts if p.event == "values"]
    assert values[0]["messages"][0]["content"] == "hi"
    assert values[-1]["__interrupt__"][0]["value"] == APPROVAL


async def test_messages_stream_as_the_model_writes_them(lg: Any, broker: Broker) -> None:
    tid = (await lg.threads.create())["thread_id"]
    await lg.runs.wait(tid, "naming", input=HELLO)
    approval = only_interrupt(await lg.threads.get(tid))
    await lg.runs.wait(tid, "naming", command={"resume": {approval["id"]: True}})
    modes = ["messages-tuple", "messages", "values"]
    parts = [
        p async for p in lg.runs.stream(tid, "naming", command={"resume": "Ada"}, stream_mode=modes)
    ]
    events = [p.event for p in parts]
    reply = [p.data for p in parts if p.event == "values"][-1]["messages"][-1]
    assert reply["type"] == "ai" and "Ada" in reply["content"]

    # messages-tuple: the reply's chunks, added up by id, are the reply
    said: dict[str, str] = {}
    for message, meta in (p.data for p in parts if p.event == "messages"):
        said[message["id"]] = said.get(message["id"], "") + message["content"]
        assert meta["run_id"] and meta["langgraph_node"] and meta["graph_id"] == "naming"
    assert said[reply["id"]] == reply["content"]
    # messages: the reply so far after each delta, then whole
    partial = [p.data[0] for p in parts if p.event == "messages/partial"]
    assert partial[-1]["id"] == reply["id"] and partial[-1]["content"] == reply["content"]
    complete = [p.data[0] for p in parts if p.event == "messages/complete"]
    assert [m["content"] for m in complete if m["id"] == reply["id"]] == [reply["content"]]
    # live: the messages come as the run goes, before the steps it took
    assert events.index("messages") < events.index("values")
    assert events.index("messages/metadata") < events.index("messages/partial")


async def test_ignoring_a_thread_ends_its_run(lg: Any, broker: Broker) -> None:
    """Agent Inbox's ignore: ``update_state(values=None, as_node="__end__")``."""
    tid = (await lg.threads.create())["thread_id"]
    await lg.runs.wait(tid, "naming", input=HELLO)
    pending = only_interrupt(await lg.threads.get(tid))
    # anything else is refused, and nothing changes
    with pytest.raises(UnprocessableEntityError, match="changes through runs and answers"):
        await lg.threads.update_state(tid, {"agent_name": "x"}, as_node="respond")
    assert (await lg.threads.get(tid))["status"] == "interrupted"

    done = await lg.threads.update_state(tid, None, as_node="__end__")
    assert done["checkpoint"]["thread_id"] == tid
    thread = await lg.threads.get(tid)
    assert thread["status"] == "idle" and thread["interrupts"] == {}
    assert tid not in [t["thread_id"] for t in await lg.threads.search(status="interrupted")]
    # the interrupt closed through the store: cancelled, like any other closed question
    with httpx.Client(base_url=broker.url) as api:
        [closed] = api.get("/interrupts", params={"thread_id": tid, "status": "cancelled"}).json()[
            "items"
        ]
        runs = api.get("/runs", params={"thread_id": tid}).json()["items"]
    assert closed["status"] == "cancelled" and pending["value"] == APPROVAL
    assert [r["status"] for r in runs] == ["cancelled"]
    # a second ignore finds nothing to end
    with pytest.raises(ConflictError, match="no run to end"):
        await lg.threads.update_state(tid, None, as_node="__end__")


async def test_twenty_concurrent_resumes_one_wins_and_the_node_runs_once(
    lg: Any, broker: Broker, redis_url: str
) -> None:
    tid = (await lg.threads.create())["thread_id"]
    stopped = await lg.runs.wait(tid, "counter", input={})
    iid = stopped["__interrupt__"][0]["id"]

    async def resume(i: int) -> str:
        try:
            await lg.runs.create(tid, "counter", command={"resume": {iid: f"answer {i}"}})
        except ConflictError as exc:
            return f"409 {exc.message}"
        return "ok"

    results = await asyncio.gather(*(resume(i) for i in range(20)))
    assert results.count("ok") == 1, results
    assert all(r.startswith("409") for r in results if r != "ok")
    final = await _settled(lg, tid)
    assert final["after"] == 1 and final["answer"].startswith("answer ")
    assert count(redis_url, broker.env["BROKER_KEY_PREFIX"], "answered", tid) == 1
    assert count(redis_url, broker.env["BROKER_KEY_PREFIX"], "after", tid) == 1


async def _settled(lg: Any, tid: str) -> dict[str, Any]:
    for _ in range(300):
        thread = await lg.threads.get(tid)
        if thread["status"] in ("idle", "error"):
            return dict(thread["values"])
        await asyncio.sleep(0.1)
    raise AssertionError(f"thread {tid} did not settle")


async def test_refusals_reach_the_sdk_as_its_errors(lg: Any, broker: Broker) -> None:
    tid = (await lg.threads.create())["thread_id"]
    with pytest.raises(ConflictError, match="no run waiting for an answer"):
        await lg.runs.create(tid, "naming", command={"resume": True})
    await lg.runs.wait(tid, "naming", input=HELLO)
    pending = only_interrupt(await lg.threads.get(tid))
    with pytest.raises(ConflictError, match="is not pending"):
        await lg.runs.create(tid, "naming", command={"resume": {"0" * 32: True}})
    with pytest.raises(ConflictError, match="already has an active run"):
        await lg.runs.create(tid, "naming", input=HELLO)
    with pytest.raises(NotFoundError):
        await lg.assistants.get("nobody")
    with pytest.raises(NotFoundError):
        await lg.threads.get("no-such-thread")
    with pytest.raises(UnprocessableEntityError, match="interrupt_before"):
        await lg.runs.create(tid, "naming", input=HELLO, interrupt_before=["respond"])
    await lg.runs.create(tid, "naming", command={"resume": {pending["id"]: True}})
    ask = await _next_interrupt(lg, tid, pending["id"])
    with pytest.raises(ConflictError):
        # the approval is answered: naming it again is refused, nothing changes
        await lg.runs.create(tid, "naming", command={"resume": {pending["id"]: False}})
    assert only_interrupt(await lg.threads.get(tid))["id"] == ask["id"]


async def test_a_schema_refused_answer_is_422(lg: Any, broker: Broker) -> None:
    tid = (await lg.threads.create())["thread_id"]
    stopped = await lg.runs.wait(tid, "typed", input={})
    iid = stopped["__interrupt__"][0]["id"]
    with pytest.raises(UnprocessableEntityError) as caught:
        await lg.runs.create(tid, "typed", command={"resume": {iid: "not what it asks"}})
    assert caught.value.body["error"]["code"] == "invalid_answer"
    thread = await lg.threads.get(tid)
    assert thread["status"] == "interrupted"


async def _next_interrupt(lg: Any, tid: str, after: str) -> dict[str, Any]:
    for _ in range(300):
        thread = await lg.threads.get(tid)
        found = [i for items in thread["interrupts"].values() for i in items]
        if thread["status"] == "interrupted" and found and found[0]["id"] != after:
            return found[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"thread {tid} asked nothing new")


async def test_answered_over_rest_the_sdk_thread_continues(lg: Any, broker: Broker) -> None:
    tid = (await lg.threads.create())["thread_id"]
    run = await lg.runs.create(tid, "naming", input=HELLO)
    with httpx.Client(base_url=broker.url, timeout=30) as api:
        state = wait_status(api, run["run_id"], "interrupted")
        answer(api, state["pending_interrupts"][0], True)
        ask = await _next_interrupt(lg, tid, "")
        assert ask["value"] == ASK_NAME
        # the SDK's join sees the run the REST answer continued
        joined = await lg.runs.join(tid, run["run_id"])
        assert joined["__interrupt__"][0]["value"] == ASK_NAME
        r = api.get("/interrupts", params={"thread_id": tid})
        answer(api, r.json()["items"][0]["id"], "Grace")
    final = await lg.runs.join(tid, run["run_id"])
    assert final["agent_name"] == "Grace"


async def test_cancel_stops_the_run(lg: Any, broker: Broker) -> None:
    tid = (await lg.threads.create())["thread_id"]
    run = await lg.runs.create(tid, "naming", input=HELLO)
    await lg.runs.join(tid, run["run_id"])
    await lg.runs.cancel(tid, run["run_id"])
    assert (await lg.runs.get(tid, run["run_id"]))["status"] == "interrupted"
    assert (await lg.threads.get(tid))["status"] == "idle"
    with pytest.raises(ConflictError):
        await lg.runs.cancel(tid, run["run_id"])


def test_the_js_sdk_runs_finds_and_resumes_the_naming_agent(broker: Broker) -> None:
    """``@langchain/langgraph-sdk`` (tests/node/langgraph_sdk.mjs) through the same flow."""
    out = _node(broker, "langgraph_sdk.mjs")
    assert out["created"] == "idle"
    assert out["waited"] == [APPROVAL]
    assert out["found"] == [True]
    assert out["first"] == APPROVAL
    assert out["next"] == ["respond"]
    assert out["streamed"][0] == "metadata" and out["second"] == ASK_NAME
    assert out["agent_name"] == "Ada" and "Ada" in out["reply"]
    assert out["said"] == out["reply"]  # the streamed chunks add up to the reply
    assert out["thread_status"] == "idle" and out["run_status"] == "success"
    assert out["refused"]["status"] == 409
    assert "no_pending_interrupt" in out["refused"]["message"]
    assert out["ignored"] == {"status": "idle", "interrupts": {}}


LOST_RACE = {"already_resolved", "no_pending_interrupt", "unknown_interrupt"}


def test_the_js_sdk_twenty_concurrent_resumes_one_wins_and_rest_answers_continue(
    broker: Broker, redis_url: str
) -> None:
    """tests/node/langgraph_race.mjs: 20 resumes of one interrupt at once through the JS SDK
    (one wins, the node runs once); an interrupt answered over REST continues the run the
    JS SDK joins, and its late resume is refused."""
    out = _node(broker, "langgraph_race.mjs")
    prefix = broker.env["BROKER_KEY_PREFIX"]

    race = out["race"]
    results = race["results"]
    assert len(results) == 20 and results.count("ok") == 1, results
    lost = [r for r in results if r != "ok"]
    assert all(r["status"] == 409 and r["code"] in LOST_RACE for r in lost), lost
    assert race["final"]["after"] == 1 and race["final"]["answer"].startswith("answer ")
    assert race["run_status"] == "success" and race["thread_status"] == "idle"
    assert count(redis_url, prefix, "answered", race["thread_id"]) == 1
    assert count(redis_url, prefix, "after", race["thread_id"]) == 1

    rest = out["rest"]
    assert rest["joined"] == rest["values"] == {"answer": "from rest", "after": 1}
    assert rest["next"] == []
    assert rest["run_status"] == "success" and rest["thread_status"] == "idle"
    assert rest["refused"] == {"status": 409, "code": "no_pending_interrupt"}
    assert count(redis_url, prefix, "answered", rest["thread_id"]) == 1
    with httpx.Client(base_url=broker.url) as api:
        query = {"thread_id": rest["thread_id"], "status": "resolved"}
        items = api.get("/interrupts", params=query).json()["items"]
    assert [(i["resolution"]["value"], i["resolution"]["channel"]) for i in items] == [
        ("from rest", "rest")
    ]


def _node(broker: Broker, script: str) -> dict[str, Any]:
    """Runs a script of tests/node against the broker; its last stdout line, as JSON."""
    assert shutil.which("node"), "Node.js is needed for the JS SDK test"
    sdk = NODE_DIR / "node_modules" / "@langchain" / "langgraph-sdk"
    assert sdk.exists(), "the npm test clients are not installed: run `npm ci --prefix tests/node`"
    done = subprocess.run(
        ["node", script],
        cwd=NODE_DIR,
        env={**os.environ, "BASE": broker.url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out
