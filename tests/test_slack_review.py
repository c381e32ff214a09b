"""A tool review of several actions answered in Slack from one modal, against the local
stand-in for Slack's Web API (tests/slack_api.py): a decision per action offering only
what its review config allows; the submission answers with the decisions in action
order, or shows errors on the blocks at fault and changes nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.flow import next_interrupt, start, wait_status
from tests.harness import TEST_AGENTS, Broker
from tests.slack_api import (
    Recorder,
    asked,
    buttons,
    click,
    opened,
    posted,
    send,
    serving,
    slack_env,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recorder() -> Iterator[tuple[Recorder, str]]:
    with serving() as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
def broker(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory, recorder: tuple[Recorder, str]
) -> Iterator[Broker]:
    b = Broker(
        redis_url,
        f"ibt{uuid.uuid4().hex[:10]}",
        tmp_path_factory.mktemp("slackreview"),
        BROKER_AGENTS=f"{TEST_AGENTS},review=tests.dashboard_graphs:review",
        **slack_env(
            recorder[1],
            [{"agent": "review", "channel": "CREVIEW"}],
            {"UALICE": "user:alice@example.com"},
        ),
    )
    with b.serving():
        yield b


@pytest.fixture
def api(broker: Broker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=broker.url, timeout=30) as c:
        yield c


def review(view: dict[str, Any], *decisions: tuple[str | None, str | None]) -> dict[str, Any]:
    """A submission of the review modal: per action, the decision chosen and the text of
    its arguments (for edit) or reason (for reject)."""
    values: dict[str, Any] = {}
    for n, (decision, text) in enumerate(decisions):
        chosen = {"value": decision} if decision else None
        values[f"decision:{n}"] = {"decision": {"type": "radio_buttons", "selected_option": chosen}}
        if text is not None:
            field = "args" if decision == "edit" else "reason"
            values[f"{field}:{n}"] = {field: {"type": "plain_text_input", "value": text}}
    state = {"values": values}
    return {"type": "view_submission", "user": {"id": "UALICE"}, "view": {**view, "state": state}}


def options(view: dict[str, Any], block_id: str) -> list[str]:
    [block] = [b for b in view["blocks"] if b.get("block_id") == block_id]
    return [o["value"] for o in block["element"]["options"]]


def test_a_review_of_several_actions_is_decided_per_action_in_one_modal(
    api: httpx.Client, recorder: tuple[Recorder, str]
) -> None:
    rec = recorder[0]
    run, h, value = asked(api, "review")
    iid = h["id"]
    email, delete = h["value"]["action_requests"]
    message = posted(rec, iid)
    assert message["channel"] == "CREVIEW"
    assert buttons(message) == [
        ("choice:approve", value, "Approve"),
        ("modal:reject", value, "Reject…"),
        ("modal:review", value, "Review…"),
    ]

    assert send(api, click("UALICE", "modal:review", value)).status_code == 200
    view = opened(rec, iid)
    assert json.loads(view["private_metadata"])["what"] == "review"
    inputs = [b["block_id"] for b in view["blocks"] if b["type"] == "input"]
    assert inputs == ["decision:0", "args:0", "reason:0", "decision:1", "reason:1"]
    assert options(view, "decision:0") == ["approve", "edit", "reject"]
    assert options(view, "decision:1") == ["approve", "reject"]  # delete_file: no edit
    [args_box] = [b for b in view["blocks"] if b.get("block_id") == "args:0"]
    assert json.loads(args_box["element"]["initial_value"]) == email["args"]

    # bad JSON, an edit the config does not allow, no decision: errors, nothing answered
    bad = send(api, review(view, ("edit", "{not json"), ("approve", None)))
    assert bad.json() == {
        "response_action": "errors",
        "errors": {"args:0": "The arguments must be JSON."},
    }
    forged = send(api, review(view, ("approve", None), ("edit", '{"path": "/tmp/x"}')))
    assert forged.json()["response_action"] == "errors"
    assert list(forged.json()["errors"]) == ["decision:1"]
    undecided = send(api, review(view, ("approve", None), (None, None)))
    assert undecided.json()["errors"] == {"decision:1": "Choose a decision."}
    pending = api.get(f"/interrupts/{iid}").json()
    assert pending["status"] == "pending" and pending["resolution"] is None

    edited = {**email["args"], "to": "carol@example.com"}
    done = send(api, review(view, ("edit", json.dumps(edited)), ("approve", None)))
    assert done.status_code == 200 and done.content == b""
    decisions = [
        {"type": "edit", "edited_action": {"name": email["name"], "args": edited}},
        {"type": "approve"},
    ]
    resolution = api.get(f"/interrupts/{iid}").json()["resolution"]
    assert resolution["value"] == {"decisions": decisions}
    assert resolution["channel"] == "slack"
    assert resolution["person"]["email"] == "alice@example.com"
    output = wait_status(api, run["run_id"], "succeeded")["output"]
    assert output["values"]["answer"] == {"decisions": decisions}
    assert delete["name"] == "delete_file"


def test_a_reason_given_in_the_review_modal_goes_with_its_reject(
    api: httpx.Client, recorder: tuple[Recorder, str]
) -> None:
    rec = recorder[0]
    run = start(api, "review", {})
    h = next_interrupt(api, run["run_id"])
    value = f"{h['id']} {h['fingerprint']}"
    posted(rec, h["id"])
    assert send(api, click("UALICE", "modal:review", value)).status_code == 200
    view = opened(rec, h["id"])
    done = send(api, review(view, ("approve", "ignored"), ("reject", " keep the report ")))
    assert done.status_code == 200 and done.content == b""
    resolution = api.get(f"/interrupts/{h['id']}").json()["resolution"]
    assert resolution["value"] == {
        "decisions": [{"type": "approve"}, {"type": "reject", "message": "keep the report"}]
    }
    wait_status(api, run["run_id"], "succeeded")
    # the same modal sent again is refused by the broker, shown on the first decision
    again = send(api, review(view, ("approve", None), ("approve", None))).json()
    assert again["response_action"] == "errors" and list(again["errors"]) == ["decision:0"]
    assert api.get(f"/interrupts/{h['id']}").json()["resolution"]["value"] == resolution["value"]
