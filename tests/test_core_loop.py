"""The core loop end to end: real API process, real arq worker process, real Redis."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.flow import answer, next_interrupt, pending, start, wait_status

pytestmark = pytest.mark.slow


def _ai_texts(run: dict[str, Any]) -> list[str]:
    return [str(m["content"]) for m in run["output"]["messages"] if m["type"] == "ai"]


def test_naming_approval_then_ask_then_named_reply(api: httpx.Client) -> None:
    run = start(api, "naming", {"messages": [{"role": "user", "content": "hello"}]})
    assert run["status"] == "queued"

    approval = next_interrupt(api, run["run_id"])
    assert approval["type"] == "approval"
    assert approval["value"] == {"type": "approval", "content": "please approve"}
    assert approval["status"] == "pending"
    assert approval["thread_id"] == run["thread_id"]
    assert approval["agent_id"] == "naming"

    answer(api, approval["id"], True, resolved_by="alice")
    ask = next_interrupt(api, run["run_id"], after=approval["id"])
    assert ask["type"] == "ask"
    assert ask["value"]["content"] == "Before we start, what would you like to call me?"

    answered = api.get(f"/interrupts/{approval['id']}").json()
    assert answered["status"] == "resolved"
    assert answered["resolution"]["value"] is True
    assert answered["resolution"]["resolved_by"] == "alice"
    assert answered["resolution"]["channel"] == "rest"

    answer(api, ask["id"], "Ada")
    done = wait_status(api, run["run_id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done
    assert done["pending_interrupts"] == []
    assert "Ada" in done["output"]["final_message"]
    assert done["output"]["values"]["agent_name"] == "Ada"
    assert pending(api, run["run_id"]) == []


def test_scheduling_slot_choice_books_the_meeting(api: httpx.Client) -> None:
    run = start(
        api,
        "scheduling",
        {"messages": [{"role": "user", "content": "Book a call with Alice about the Q3 roadmap"}]},
    )
    slots = next_interrupt(api, run["run_id"])
    value = slots["value"]
    assert value["attendee"] == "Alice"
    assert "Q3 roadmap" in value["topic"]
    assert len(value["slots"]) == 4
    assert all(set(s) >= {"label", "iso"} for s in value["slots"])

    chosen = value["slots"][2]
    answer(api, slots["id"], {"chosen_time": chosen["iso"], "chosen_label": chosen["label"]})
    done = wait_status(api, run["run_id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done
    tool_results = [m["content"] for m in done["output"]["messages"] if m["type"] == "tool"]
    assert tool_results == [f"Meeting scheduled for {chosen['label']}: {value['topic']}"]
    assert (
        f"Meeting scheduled for {chosen['label']}: {value['topic']}"
        in done["output"]["final_message"]
    )


def test_scheduling_cancel_answer_does_not_book(api: httpx.Client) -> None:
    run = start(
        api,
        "scheduling",
        {"messages": [{"role": "user", "content": "Book a call with Bob about hiring"}]},
    )
    slots = next_interrupt(api, run["run_id"])
    answer(api, slots["id"], {"cancelled": True})
    done = wait_status(api, run["run_id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done
    tool_results = [m["content"] for m in done["output"]["messages"] if m["type"] == "tool"]
    assert tool_results == [f"User cancelled. Meeting NOT scheduled: {slots['value']['topic']}"]


def _email_run(api: httpx.Client) -> tuple[dict[str, Any], dict[str, Any]]:
    run = start(
        api,
        "tool_approval",
        {
            "messages": [
                {"role": "user", "content": "Send an email to bob@example.com about the launch"}
            ]
        },
    )
    review = next_interrupt(api, run["run_id"])
    value = review["value"]
    assert [a["name"] for a in value["action_requests"]] == ["send_email"]
    assert value["review_configs"][0]["action_name"] == "send_email"
    assert set(value["review_configs"][0]["allowed_decisions"]) == {"approve", "edit", "reject"}
    return run, review


def _tool_messages(run: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in run["output"]["messages"] if m["type"] == "tool"]


def test_tool_approval_approve_runs_the_tool_with_its_args(api: httpx.Client) -> None:
    run, review = _email_run(api)
    args = review["value"]["action_requests"][0]["args"]
    answer(api, review["id"], {"decisions": [{"type": "approve"}]})
    done = wait_status(api, run["run_id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done
    tools = _tool_messages(done)
    assert len(tools) == 1 and tools[0].get("status", "success") != "error"
    assert args["to"] in tools[0]["content"]


def test_tool_approval_edit_sends_the_edited_args(api: httpx.Client) -> None:
    run, review = _email_run(api)
    args = dict(review["value"]["action_requests"][0]["args"])
    args["to"] = "carol@example.com"
    args["subject"] = "Edited subject"
    decision = {"type": "edit", "edited_action": {"name": "send_email", "args": args}}
    answer(api, review["id"], {"decisions": [decision]})
    done = wait_status(api, run["run_id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done
    tools = _tool_messages(done)
    assert len(tools) == 1
    # LangChain prefixes the tool's output with a note that a human edited the call
    assert "Email sent to carol@example.com with subject 'Edited subject'" in tools[0]["content"]
    assert "Email sent to bob@example.com" not in tools[0]["content"]


def test_tool_approval_reject_skips_the_tool(api: httpx.Client) -> None:
    run, review = _email_run(api)
    answer(api, review["id"], {"decisions": [{"type": "reject", "message": "not today"}]})
    done = wait_status(api, run["run_id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done
    tools = _tool_messages(done)
    assert len(tools) == 1
    assert "not today" in tools[0]["content"]
    assert "sent" not in tools[0]["content"].lower()


@pytest.mark.parametrize("order", ["first-then-second", "second-then-first"])
def test_parallel_interrupts_answered_in_either_order(api: httpx.Client, order: str) -> None:
    run = start(api, "parallel", {})
    wait_status(api, run["run_id"], "interrupted", pending=2)
    items = pending(api, run["run_id"])
    assert len(items) == 2
    assert len({i["interrupt_id"] for i in items}) == 2
    if order == "second-then-first":
        items.reverse()
    first, second = items

    answer(api, first["id"], {"approved": True, "who": "first"})
    # the other interrupt stays pending, as the same record, while the run waits on it
    after_one = wait_status(api, run["run_id"], "interrupted")
    assert after_one["pending_interrupts"] == [second["id"]]

    answer(api, second["id"], {"approved": False, "who": "second"})
    done = wait_status(api, run["run_id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done
    answers = done["output"]["values"]["answers"]
    assert sorted(a["who"] for a in answers.values()) == ["first", "second"]
    assert len(answers) == 2
    every = api.get("/interrupts", params={"run_id": run["run_id"], "status": "resolved"}).json()
    assert sorted(i["id"] for i in every["items"]) == sorted([first["id"], second["id"]])
