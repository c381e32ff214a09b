"""AG-UI over real HTTP: the npm @ag-ui/client, and the protocol's edge cases."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agui_calls import agui, run_input
from tests.flow import answer, next_interrupt, wait_status
from tests.harness import Broker

pytestmark = pytest.mark.slow

NODE_DIR = Path(__file__).parent / "node"


@pytest.fixture(scope="session")
def node_client() -> Path:
    """The Node test client; its packages are installed by setup (README, .ci/run)."""
    assert shutil.which("node"), "Node.js is needed for the AG-UI client tests"
    assert (NODE_DIR / "node_modules" / "@ag-ui" / "client").exists(), (
        "the npm test client is not installed: run `npm ci --prefix tests/node`"
    )
    return NODE_DIR


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def test_real_agui_client_runs_naming_with_both_resume_styles(
    broker: Broker, api: httpx.Client, node_client: Path
) -> None:
    thread = str(uuid.uuid4())
    proc = subprocess.run(
        ["node", "naming.mjs"],
        cwd=node_client,
        env={**os.environ, "BASE": broker.url, "THREAD_ID": thread, "NAME": "Grace"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    start, approve, name = (json.loads(line) for line in proc.stdout.strip().splitlines())
    # by default RUN_FINISHED carries no outcome, so the client holds no pending interrupt
    assert start["finished"]["outcome"] == "success"
    assert start["pending"] == []
    for step in (start, approve, name):
        assert step["failure"] is None, step
        assert step["errors"] == [], step
        assert step["types"][0] == "RUN_STARTED"
        assert step["types"][-1] == "RUN_FINISHED"

    # the approval interrupt arrives as on_interrupt with the JSON-encoded value
    assert [c["name"] for c in start["custom"]] == ["on_interrupt"]
    assert json.loads(start["custom"][0]["value"]) == {
        "type": "approval",
        "content": "please approve",
    }
    # answered through forwardedProps.command.resume, the ask interrupt follows
    assert [json.loads(c["value"])["type"] for c in approve["custom"]] == ["ask"]
    assert approve["finished"]["outcome"] == "interrupt"
    [ask] = approve["finished"]["interrupts"]
    assert ask["reason"] == "ask"
    assert approve["pending"] == [ask["id"]]
    # answered through resume[], the run finishes with the name in the reply
    assert name["finished"]["outcome"] == "success"
    assert name["pending"] == []
    assert "TEXT_MESSAGE_CONTENT" in name["types"]
    assert "Grace" in name["lastAssistant"]

    # the same answers went through the store, recorded with channel agui
    approval = api.get(f"/interrupts/{ask['id']}").json()
    assert approval["resolution"]["channel"] == "agui"
    assert approval["resolution"]["value"] == "Grace"
    run = api.get(f"/runs/{ask['metadata']['run_id']}").json()
    assert run["status"] == "succeeded"
    resolved = api.get(
        "/interrupts", params={"run_id": run["run_id"], "status": "resolved"}
    ).json()["items"]
    assert [i["resolution"]["channel"] for i in resolved] == ["agui", "agui"]


def test_resume_with_nothing_pending_is_a_run_error(broker: Broker, api: httpx.Client) -> None:
    thread = str(uuid.uuid4())
    body = run_input(thread, resume=[{"interruptId": "x", "status": "resolved", "payload": 1}])
    events = agui(broker, "naming", body)
    assert types(events) == ["RUN_STARTED", "RUN_ERROR"]
    assert events[1]["code"] == "no_pending_interrupt"
    # and no run was started on the thread
    assert api.get("/runs", params={"thread_id": thread}).json()["items"] == []


def test_resume_naming_the_wrong_interrupt_changes_nothing(
    broker: Broker, api: httpx.Client
) -> None:
    thread = str(uuid.uuid4())
    first = agui(broker, "naming", run_input(thread))
    [pending] = next(e for e in first if e["type"] == "RUN_FINISHED")["outcome"]["interrupts"]
    wrong = run_input(thread, resume=[{"interruptId": "nope", "status": "resolved", "payload": 1}])
    events = agui(broker, "naming", wrong)
    assert types(events) == ["RUN_STARTED", "RUN_ERROR"]
    assert events[1]["code"] == "unknown_interrupt"
    assert pending["id"] in events[1]["message"]
    assert api.get(f"/interrupts/{pending['id']}").json()["status"] == "pending"
    # a legacy resume is ambiguous only when several are pending: here it answers the one
    ok = agui(broker, "naming", run_input(thread, forwardedProps={"command": {"resume": True}}))
    assert [json.loads(e["value"])["type"] for e in ok if e["type"] == "CUSTOM"] == ["ask"]


def test_answered_elsewhere_the_next_request_shows_the_continued_run(
    broker: Broker, api: httpx.Client
) -> None:
    thread = str(uuid.uuid4())
    first = agui(broker, "naming", run_input(thread))
    [approval] = next(e for e in first if e["type"] == "RUN_FINISHED")["outcome"]["interrupts"]
    run_id = approval["metadata"]["run_id"]
    answer(api, approval["id"], True)  # over REST, while the AG-UI client waits
    ask = next_interrupt(api, run_id, after=approval["id"])
    events = agui(broker, "naming", run_input(thread))
    customs = [json.loads(e["value"]) for e in events if e["type"] == "CUSTOM"]
    assert customs == [ask["value"]]  # the current question, not the stale approval
    finished = next(e for e in events if e["type"] == "RUN_FINISHED")
    assert [i["id"] for i in finished["outcome"]["interrupts"]] == [ask["id"]]
    assert len(api.get("/runs", params={"thread_id": thread}).json()["items"]) == 1


def test_parallel_interrupts_answered_together_with_resume_entries(
    broker: Broker, api: httpx.Client
) -> None:
    thread = str(uuid.uuid4())
    first = agui(broker, "parallel", run_input(thread))
    customs = [e for e in first if e["type"] == "CUSTOM"]
    assert len(customs) == 2
    interrupts = next(e for e in first if e["type"] == "RUN_FINISHED")["outcome"]["interrupts"]
    assert len(interrupts) == 2
    # a legacy resume cannot say which of two it answers
    vague = agui(broker, "parallel", run_input(thread, forwardedProps={"command": {"resume": 1}}))
    assert vague[-1]["type"] == "RUN_ERROR" and vague[-1]["code"] == "ambiguous_resume"
    # one entry per interrupt, by the broker's id or LangGraph's
    resume = [
        {"interruptId": interrupts[0]["id"], "status": "resolved", "payload": {"ok": 1}},
        {
            "interruptId": interrupts[1]["metadata"]["interrupt_id"],
            "status": "resolved",
            "payload": {"ok": 2},
        },
    ]
    done = agui(broker, "parallel", run_input(thread, resume=resume))
    assert done[-1]["type"] == "RUN_FINISHED"
    assert done[-1]["outcome"] == {"type": "success"}
    run = wait_status(api, interrupts[0]["metadata"]["run_id"], "succeeded")
    assert sorted(a["ok"] for a in run["output"]["values"]["answers"].values()) == [1, 2]


def test_a_cancelled_resume_entry_cancels_the_run(broker: Broker, api: httpx.Client) -> None:
    thread = str(uuid.uuid4())
    first = agui(broker, "naming", run_input(thread))
    [approval] = next(e for e in first if e["type"] == "RUN_FINISHED")["outcome"]["interrupts"]
    body = run_input(thread, resume=[{"interruptId": approval["id"], "status": "cancelled"}])
    events = agui(broker, "naming", body)
    assert events[-1]["type"] == "RUN_FINISHED"
    assert events[-1]["outcome"] == {"type": "cancelled"}
    assert api.get(f"/interrupts/{approval['id']}").json()["status"] == "cancelled"
    assert api.get(f"/runs/{approval['metadata']['run_id']}").json()["status"] == "cancelled"


@pytest.mark.parametrize("arguments", ["not json", "[1, 2]"])
def test_tool_call_arguments_that_are_no_json_object_are_a_run_error(
    broker: Broker, api: httpx.Client, arguments: str
) -> None:
    thread = str(uuid.uuid4())
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}
    said = {"id": f"a-{thread}", "role": "assistant", "toolCalls": [call]}
    body = run_input(thread)
    body["messages"].append(said)
    events = agui(broker, "naming", body)
    assert types(events) == ["RUN_STARTED", "RUN_ERROR"]
    assert events[1]["code"] == "invalid_request" and "c1" in events[1]["message"]
    assert api.get("/runs", params={"thread_id": thread}).json()["items"] == []


def test_bad_agui_requests_get_json_errors(broker: Broker) -> None:
    with httpx.Client(base_url=broker.url, timeout=30) as client:
        r = client.post("/agui/naming", json={"threadId": "t"})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
        r = client.post("/agui/nobody", json=run_input("t"))
        assert r.status_code == 404 and r.json()["error"]["code"] == "agent_not_found"
        r = client.post("/agui/naming", content=b"{", headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
        # thread ids as POST /runs takes them: no key names built from anything else
        for bad in ("", "a b", "x\n", "t" * 201, "a/b"):
            r = client.post("/agui/naming", json=run_input(bad))
            assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request", bad


def test_interrupt_events_come_in_ag_ui_langgraph_order(broker: Broker) -> None:
    thread = str(uuid.uuid4())
    body = run_input(thread)
    body["forwardedProps"] = {}  # the default: no interrupt outcome on RUN_FINISHED
    events = agui(broker, "naming", body)
    assert types(events)[-4:] == ["STATE_SNAPSHOT", "MESSAGES_SNAPSHOT", "CUSTOM", "RUN_FINISHED"]
    assert "outcome" not in events[-1]
    assert events[0]["protocolVersion"] == "1.0"
    assert events[0]["threadId"] == thread and events[-1]["runId"] == body["runId"]


def test_copilotkit_graph_interrupt_answered_over_rest_continues_in_ag_ui(
    broker: Broker, api: httpx.Client
) -> None:
    """A graph written with CopilotKitMiddleware and CopilotKitState, unchanged."""
    thread = str(uuid.uuid4())
    body = {
        "threadId": thread,
        "runId": str(uuid.uuid4()),
        "messages": [
            {"id": "u1", "role": "user", "content": "Book a call with Alice about the Q3 roadmap"}
        ],
        "tools": [{"name": "confirm", "description": "ask the user", "parameters": {}}],
        "context": [{"description": "user time zone", "value": "UTC"}],
        "forwardedProps": {},
    }
    first = agui(broker, "copilot", body)
    customs = [e for e in first if e["type"] == "CUSTOM" and e["name"] == "on_interrupt"]
    assert len(customs) == 1
    question = json.loads(customs[0]["value"])
    assert question["attendee"] == "Alice" and len(question["slots"]) == 4
    tool_starts = [e for e in first if e["type"] == "TOOL_CALL_START"]
    assert [e["toolCallName"] for e in tool_starts] == ["schedule_meeting"]

    # the same interrupt is in the broker's inbox; a person answers it over REST
    [pending] = api.get("/interrupts", params={"thread_id": thread}).json()["items"]
    assert pending["value"] == question
    slot = question["slots"][1]
    answer(api, pending["id"], {"chosen_time": slot["iso"], "chosen_label": slot["label"]})
    wait_status(api, pending["run_id"], "succeeded")

    # the AG-UI client's next request shows the continuation, not the old question
    after = agui(broker, "copilot", {**body, "runId": str(uuid.uuid4())})
    assert not [e for e in after if e["type"] == "CUSTOM"]
    assert after[-1]["type"] == "RUN_FINISHED"
    snapshot = next(e for e in after if e["type"] == "MESSAGES_SNAPSHOT")
    texts = [m.get("content") or "" for m in snapshot["messages"]]
    assert any(f"Meeting scheduled for {slot['label']}" in t for t in texts)
    state = next(e for e in after if e["type"] == "STATE_SNAPSHOT")["snapshot"]
    assert [a["name"] for a in state["copilotkit"]["actions"]] == ["confirm"]


def _sha(key: str) -> str:
    import hashlib

    return hashlib.sha256(key.encode()).hexdigest()


AGUI_KEYS = {
    "reader": ["interrupts:read"],
    "resolver": ["interrupts:read", "interrupts:resolve"],
    "writer": ["interrupts:read", "runs:write"],
}


@pytest.fixture(scope="module")
def secured(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    entries = [
        {"id": name, "key_sha256": _sha(f"{name}-key-0123456789"), "scopes": scopes}
        for name, scopes in AGUI_KEYS.items()
    ]
    entries.append(
        {
            "id": "other-agent",
            "key_sha256": _sha("other-agent-key-0123456789"),
            "scopes": ["interrupts:read", "interrupts:resolve", "runs:write"],
            "agents": ["scheduling"],
        }
    )
    prefix = f"ibt{uuid.uuid4().hex[:10]}"
    b = Broker(
        redis_url,
        prefix,
        tmp_path_factory.mktemp("agui-auth"),
        BROKER_AUTH="on",
        BROKER_API_KEYS=json.dumps(entries),
    )
    try:
        b.start_worker()
        b.start_api()
        yield b
    finally:
        b.stop()
        from tests.harness import delete_prefix

        delete_prefix(redis_url, prefix)


def _agui_status(b: Broker, key: str | None, body: dict[str, Any]) -> tuple[int, Any]:
    headers = {"Accept": "text/event-stream"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    r = httpx.post(f"{b.url}/agui/naming", json=body, headers=headers, timeout=60)
    events = [json.loads(x[6:]) for x in r.text.splitlines() if x.startswith("data: ")]
    return r.status_code, (r.json() if r.status_code != 200 else events)


def test_agui_needs_a_key_with_the_right_scopes(secured: Broker) -> None:
    thread = str(uuid.uuid4())
    start = run_input(thread)
    code, body = _agui_status(secured, None, start)
    assert code == 401 and body["error"]["code"] == "unauthorized"
    code, body = _agui_status(secured, "wrong-key", start)
    assert code == 401
    # starting a run needs runs:write; a key limited to another agent sees no such agent
    code, body = _agui_status(secured, "reader-key-0123456789", start)
    assert code == 403 and body["error"]["scope"] == "runs:write"
    code, body = _agui_status(secured, "other-agent-key-0123456789", start)
    assert code == 404 and body["error"]["code"] == "agent_not_found"
    assert body["error"]["known_agents"] == ["scheduling"]  # as if naming did not exist
    code, events = _agui_status(secured, "writer-key-0123456789", start)
    assert code == 200 and events[-1]["type"] == "RUN_FINISHED"
    [approval] = events[-1]["outcome"]["interrupts"]
    # answering needs interrupts:resolve
    resume = run_input(
        thread, resume=[{"interruptId": approval["id"], "status": "resolved", "payload": True}]
    )
    code, body = _agui_status(secured, "writer-key-0123456789", resume)
    assert code == 403 and body["error"]["scope"] == "interrupts:resolve"
    code, events = _agui_status(secured, "resolver-key-0123456789", resume)
    assert code == 200
    assert [json.loads(e["value"])["type"] for e in events if e["type"] == "CUSTOM"] == ["ask"]
    r = httpx.get(
        f"{secured.url}/interrupts/{approval['id']}",
        headers={"Authorization": "Bearer resolver-key-0123456789"},
    )
    assert r.json()["resolution"]["resolved_by"] == "resolver"
    assert r.json()["resolution"]["channel"] == "agui"


def test_copilotkit_graph_through_the_real_client_continues_after_a_rest_answer(
    broker: Broker, api: httpx.Client, node_client: Path
) -> None:
    thread = str(uuid.uuid4())
    env = {**os.environ, "BASE": broker.url, "THREAD_ID": thread}

    def client(mode: str) -> dict[str, Any]:
        proc = subprocess.run(
            ["node", "copilot.mjs", mode],
            cwd=node_client,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert proc.returncode == 0, proc.stderr
        out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        assert out["errors"] == []
        return out

    asked = client("ask")
    [custom] = asked["custom"]
    assert custom["name"] == "on_interrupt"
    question = json.loads(custom["value"])
    assert question["attendee"] == "Alice" and len(question["slots"]) == 4

    [pending] = api.get("/interrupts", params={"thread_id": thread}).json()["items"]
    slot = question["slots"][3]
    answer(api, pending["id"], {"chosen_time": slot["iso"], "chosen_label": slot["label"]})
    wait_status(api, pending["run_id"], "succeeded")

    followed = client("follow")
    assert followed["custom"] == []  # not the stale question
    assert followed["types"][-1] == "RUN_FINISHED"
    assert any(f"Meeting scheduled for {slot['label']}" in t for t in followed["texts"])


def test_a_resume_bound_to_a_stale_fingerprint_changes_nothing(
    broker: Broker, api: httpx.Client
) -> None:
    # docs/design.md, "Answers bound to what was shown"
    thread = str(uuid.uuid4())
    first = agui(broker, "naming", run_input(thread))
    [shown] = [e for e in first if e["type"] == "CUSTOM"]
    [pending] = next(e for e in first if e["type"] == "RUN_FINISHED")["outcome"]["interrupts"]
    fp = api.get(f"/interrupts/{pending['id']}").json()["fingerprint"]
    assert shown["rawEvent"] == {"interrupt_id": pending["id"], "fingerprint": fp}
    assert pending["metadata"]["fingerprint"] == fp

    stale = {"command": {"resume": True}, "ifMatch": "an-older-question"}
    events = agui(broker, "naming", run_input(thread, forwardedProps=stale))
    assert types(events) == ["RUN_STARTED", "RUN_ERROR"]
    assert events[1]["code"] == "fingerprint_mismatch"
    assert api.get(f"/interrupts/{pending['id']}").json()["status"] == "pending"

    bound = {"command": {"resume": True}, "ifMatch": {pending["id"]: fp}}
    ok = agui(broker, "naming", run_input(thread, forwardedProps=bound))
    assert [json.loads(e["value"])["type"] for e in ok if e["type"] == "CUSTOM"] == ["ask"]
