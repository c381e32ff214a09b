"""Slack as an answer channel, against a local stand-in for Slack's Web API that
slack_sdk's client talks to: a routed interrupt is posted with buttons by its kind; a
click or a modal signed with the signing secret answers as the mapped person (assignment
applies); a bad or old signature and an unmapped user change nothing; the message is
updated with the outcome whichever channel answered, and with the votes so far on an
interrupt decided by votes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis

from broker.core import config, slack
from broker.core.keys import Keys
from broker.core.settings import Settings
from tests.flow import next_interrupt, start, wait_status
from tests.harness import Broker
from tests.slack_api import (
    SECRET,
    Recorder,
    asked,
    buttons,
    click,
    opened,
    posted,
    replies,
    send,
    serving,
    slack_env,
    submit,
    updated,
)

ROUTES = [
    {"agent": "naming", "channel": "CNAMING"},
    {"agent": "scheduling", "channel": "CSCHED"},
    {"agent": "tool_approval", "channel": "CTOOLS"},
    {"agent": "expiring_later", "channel": "CEXPIRY"},
    {"agent": "counter", "channel": "CVOTES"},
]
USERS = {"UALICE": "user:alice@example.com", "UBOB": "user:bob@example.com"}
ASSIGNMENT = [{"agent": "scheduling", "assignees": ["user:alice@example.com"]}]
CHAIN = ["user:alice@example.com", "user:bob@example.com"]
RULES = [{"agent": "counter", "type": "approval", "approval": {"chain": CHAIN}}]


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
        tmp_path_factory.mktemp("slack"),
        **slack_env(recorder[1], ROUTES, USERS),
        BROKER_ASSIGNMENT=json.dumps(ASSIGNMENT),
        BROKER_APPROVAL_RULES=json.dumps(RULES),
    )
    with b.serving():
        yield b


@pytest.fixture
def api(broker: Broker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=broker.url, timeout=30) as c:
        yield c


def outcomes(api: httpx.Client, iid: str) -> list[str]:
    return [e["outcome"] for e in api.get(f"/interrupts/{iid}/audit").json()["items"]]


@pytest.mark.slow
def test_an_approval_is_answered_by_a_signed_click_and_a_free_text_by_a_modal(
    api: httpx.Client, recorder: tuple[Recorder, str]
) -> None:
    rec = recorder[0]
    run, h, value = asked(api, "naming", "hello")
    iid = h["id"]
    message = posted(rec, iid)
    assert message["channel"] == "CNAMING"
    assert buttons(message) == [
        ("choice:approve", value, "Approve"),
        ("choice:reject", value, "Reject"),
    ]
    assert "please approve" in message["blocks"][0]["text"]["text"]

    # forged, stale, or from a Slack user nobody mapped: nothing is answered
    forged = send(api, click("UALICE", "choice:approve", value), secret="not the secret")
    assert forged.status_code == 401 and forged.json()["error"]["code"] == "unauthorized"
    stale = send(api, click("UALICE", "choice:approve", value), age_s=6 * 60)
    assert stale.status_code == 401 and stale.json()["error"]["code"] == "unauthorized"
    reply = f"{recorder[1]}response/{iid}"  # the click's response_url
    assert send(api, click("UMALLORY", "choice:approve", value, reply)).status_code == 200
    told = replies(rec, iid)
    assert told[0]["response_type"] == "ephemeral" and "BROKER_SLACK_USERS" in told[0]["text"]
    assert api.get(f"/interrupts/{iid}").json()["status"] == "pending"
    assert outcomes(api, iid) == ["slack_user_unknown"]

    done = send(api, click("UALICE", "choice:approve", value))
    assert done.status_code == 200 and done.content == b""
    resolution = api.get(f"/interrupts/{iid}").json()["resolution"]
    assert (resolution["value"], resolution["channel"]) == (True, "slack")
    assert resolution["person"]["email"] == "alice@example.com"
    assert resolution["person"]["iss"] == "slack"
    update = updated(rec, iid, "alice@example.com")
    assert update["channel"] == "CNAMING"
    assert "Approve* by alice@example.com via slack" in json.dumps(update["blocks"])
    assert not [b for b in update["blocks"] if b["type"] == "actions"]

    ask = next_interrupt(api, run["run_id"], after=iid)
    ask_value = f"{ask['id']} {ask['fingerprint']}"
    assert buttons(posted(rec, ask["id"])) == [("modal:answer", ask_value, "Answer…")]
    assert send(api, click("UALICE", "modal:answer", ask_value)).status_code == 200
    view = opened(rec, ask["id"])
    assert view["callback_id"] == "broker_answer"
    assert json.loads(view["private_metadata"])["what"] == "answer"
    assert send(api, submit("UALICE", view, "Ada")).status_code == 200
    assert wait_status(api, run["run_id"], "succeeded")["output"]["values"]["agent_name"] == "Ada"
    resolution = api.get(f"/interrupts/{ask['id']}").json()["resolution"]
    assert (resolution["value"], resolution["channel"]) == ("Ada", "slack")


@pytest.mark.slow
def test_a_chain_voted_in_slack_shows_the_votes_so_far(
    api: httpx.Client, recorder: tuple[Recorder, str]
) -> None:
    rec = recorder[0]
    run, h, value = asked(api, "counter")
    iid = h["id"]
    first = json.dumps(posted(rec, iid)["blocks"], ensure_ascii=False)
    assert "(now: user:alice@example.com). Votes so far: none yet" in first

    assert send(api, click("UALICE", "choice:approve", value)).status_code == 200
    assert api.get(f"/interrupts/{iid}").json()["status"] == "pending"
    update = updated(rec, iid, "(now: user:bob@example.com)")
    assert "Votes so far: ✅ alice@example.com" in json.dumps(update["blocks"], ensure_ascii=False)
    assert buttons(update) == buttons(posted(rec, iid))  # still answered here

    assert send(api, click("UBOB", "choice:approve", value)).status_code == 200
    assert wait_status(api, run["run_id"], "succeeded")["output"]["values"]["answer"] == {
        "approved": True,
        "votes": api.get(f"/interrupts/{iid}").json()["resolution"]["votes"],
    }
    done = updated(rec, iid, "via slack")
    assert not [b for b in done["blocks"] if b["type"] == "actions"]


@pytest.mark.slow
def test_slots_apply_assignment_and_an_answer_elsewhere_updates_the_message(
    api: httpx.Client, recorder: tuple[Recorder, str]
) -> None:
    rec = recorder[0]
    _, h, value = asked(api, "scheduling", "Book a call")
    iid = h["id"]
    shown = buttons(posted(rec, iid))
    slots = h["value"]["slots"]
    assert shown == [
        *[(f"choice:slot:{n}", value, s["label"]) for n, s in enumerate(slots)],
        ("choice:cancel", value, "None of these (cancel)"),
    ]
    # bob is mapped, but the interrupt is assigned to alice
    reply = f"{recorder[1]}response/{iid}"
    assert send(api, click("UBOB", "choice:slot:0", value, reply)).status_code == 200
    assert "assigned to others" in replies(rec, iid)[0]["text"]
    assert api.get(f"/interrupts/{iid}").json()["status"] == "pending"
    assert outcomes(api, iid) == ["not_assignee"]

    answered = api.post(f"/interrupts/{iid}/resolve", json={"value": {"cancelled": True}})
    assert answered.status_code == 200, answered.text
    update = updated(rec, iid, "via rest")
    assert update["channel"] == "CSCHED"
    assert "None of these (cancel)" in json.dumps(update["blocks"])
    assert not [b for b in update["blocks"] if b["type"] == "actions"]


@pytest.mark.slow
def test_a_tool_review_is_edited_in_a_modal(
    api: httpx.Client, recorder: tuple[Recorder, str]
) -> None:
    rec = recorder[0]
    run, h, value = asked(api, "tool_approval", "Send an email to bob@example.com")
    iid = h["id"]
    message = posted(rec, iid)
    assert buttons(message) == [
        ("choice:approve", value, "Approve"),
        ("modal:reject", value, "Reject…"),
        ("modal:edit:0", value, "Edit…"),
    ]
    action = h["value"]["action_requests"][0]
    assert f"*{action['name']}*" in json.dumps(message["blocks"])

    assert send(api, click("UALICE", "modal:edit:0", value)).status_code == 200
    view = opened(rec, iid)
    box = view["blocks"][1]["element"]
    assert json.loads(box["initial_value"]) == action["args"]
    bad = send(api, submit("UALICE", view, "{not json"))
    assert bad.json() == {
        "response_action": "errors",
        "errors": {"answer": "The arguments must be JSON."},
    }
    edited = {**action["args"], "to": "carol@example.com"}
    assert send(api, submit("UALICE", view, json.dumps(edited))).status_code == 200
    resolution = api.get(f"/interrupts/{iid}").json()["resolution"]
    assert resolution["channel"] == "slack"
    assert resolution["value"] == {
        "decisions": [{"type": "edit", "edited_action": {"name": action["name"], "args": edited}}]
    }
    updated(rec, iid, "edit* by alice@example.com via slack")
    api.post(f"/runs/{run['run_id']}/cancel")


def test_slack_settings_are_checked_at_start() -> None:
    settings = slack.SlackSettings(slack_bot_token="xoxb-1")
    with pytest.raises(slack.SlackConfigError, match="BROKER_SLACK_SIGNING_SECRET"):
        slack.configured(settings)
    bad_user = slack.SlackSettings(
        slack_bot_token="x", slack_signing_secret="s", slack_routes=ROUTES, slack_users={"U1": "a"}
    )
    with pytest.raises(slack.SlackConfigError, match="user:<email or subject>"):
        slack.configured(bad_user)
    bad_route = slack.SlackSettings(
        slack_bot_token="x", slack_signing_secret="s", slack_routes=[{"channel": "#general"}]
    )
    with pytest.raises(slack.SlackConfigError, match="channel id"):
        slack.configured(bad_route)
    assert slack.configured(slack.SlackSettings()) is None


@pytest.mark.slow
def test_a_tool_review_is_rejected_with_a_reason_from_a_modal(
    api: httpx.Client, recorder: tuple[Recorder, str]
) -> None:
    rec = recorder[0]
    run, h, value = asked(api, "tool_approval", "Send an email to bob@example.com")
    iid = h["id"]
    posted(rec, iid)
    assert send(api, click("UALICE", "modal:reject", value)).status_code == 200
    view = opened(rec, iid)
    assert json.loads(view["private_metadata"])["what"] == "reject"
    assert view["blocks"][1]["optional"] is True
    assert send(api, submit("UALICE", view, "not to bob")).status_code == 200
    resolution = api.get(f"/interrupts/{iid}").json()["resolution"]
    assert resolution["channel"] == "slack" and resolution["comment"] == "not to bob"
    assert resolution["value"] == {"decisions": [{"type": "reject", "message": "not to bob"}]}
    update = updated(rec, iid, "not to bob")
    assert "reject* by alice@example.com via slack" in json.dumps(update["blocks"])
    api.post(f"/runs/{run['run_id']}/cancel")


@pytest.mark.slow
def test_an_interrupt_that_expires_has_its_message_updated(
    api: httpx.Client, broker: Broker, recorder: tuple[Recorder, str]
) -> None:
    rec = recorder[0]
    run = start(api, "expiring_later", {})
    iid = next_interrupt(api, run["run_id"])["id"]
    posted(rec, iid)
    # the deadline comes now, on the broker's clock, rather than in an hour
    keys = Keys(broker.env["BROKER_KEY_PREFIX"])
    with redis.Redis.from_url(broker.env["REDIS_URL"]) as r:
        past = int(r.time()[0]) * 1000 - 1000
        r.hset(keys.interrupt(iid), "expires_at_ms", past)
        r.zadd(keys.deadlines, {iid: past})
    wait_status(api, run["run_id"], "failed")
    update = updated(rec, iid, "Expired without an answer")
    assert update["channel"] == "CEXPIRY"
    assert not [b for b in update["blocks"] if b["type"] == "actions"]


def test_every_process_refuses_incomplete_slack_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROKER_SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("BROKER_SLACK_ROUTES", json.dumps(ROUTES))
    settings = Settings(redis_url="redis://127.0.0.1:1/0", auth="off")
    for process in ("api", "worker"):
        with pytest.raises(ValueError, match="BROKER_SLACK_SIGNING_SECRET"):
            config.check(settings, process)
    monkeypatch.setenv("BROKER_SLACK_SIGNING_SECRET", SECRET)
    on = config.check(settings, "worker").slack
    assert on is not None and on.channel_for({"agent_id": "naming"}) == "CNAMING"
    monkeypatch.setenv("BROKER_SLACK_ROUTES", "[{")
    with pytest.raises(ValueError, match="BROKER_SLACK_ROUTES is not valid JSON"):
        config.check(settings, "api")
