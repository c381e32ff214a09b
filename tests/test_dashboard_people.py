"""The dashboard's "approvals by people" in a real browser (Debian's Chromium, driven by
Playwright) against a real API and worker: a comment with an answer (the reason of a
rejection), several interrupts answered at once, and (tests/test_dashboard_oidc.py)
people signing in at a real OpenID provider."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.browser import (
    NEEDS_CHROMIUM,
    PHONE,
    Tab,
    asked,
    card,
    checked_tab,
    clear_inbox,
    launch,
    screenshot,
    silence_websocket,
)
from tests.flow import answer, next_interrupt, read_interrupt, start, wait_status
from tests.harness import Broker

pytestmark = [pytest.mark.slow, NEEDS_CHROMIUM]
expect.set_options(timeout=30_000)

HI = {"messages": [{"role": "user", "content": "hi"}]}
OVERFLOW = "document.documentElement.scrollWidth - document.documentElement.clientWidth"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch() as b:
        yield b


@pytest.fixture(scope="module")
def dash(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    prefix = f"ibt{uuid.uuid4().hex[:10]}"
    b = Broker(redis_url, prefix, tmp_path_factory.mktemp("people"))
    with b.serving():
        yield b


@pytest.fixture
def client(dash: Broker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=dash.url, timeout=30) as c:
        yield c


@pytest.fixture
def tab(browser: Browser, dash: Broker) -> Iterator[Tab]:
    """A tab that, afterwards, must not have thrown or asked another origin for anything."""
    with checked_tab(browser, dash.url) as t:
        yield t


def test_a_rejection_carries_its_reason(tab: Tab, client: httpx.Client) -> None:
    run = start(client, "naming", HI)
    question = next_interrupt(client, run["run_id"])
    page = tab.page
    page.goto("/")
    approval = asked(page, question["id"])
    approval.get_by_label("Reason or comment (optional)").fill("Not in this quarter's budget")
    approval.get_by_role("button", name="Reject").click()
    expect(approval).to_have_count(0)

    got = read_interrupt(client, question["id"])["resolution"]
    assert got["value"] is False
    assert got["comment"] == "Not in this quarter's budget"
    # no name typed in "Answer as": none is sent, so none needs the on-behalf scope
    assert got["resolved_by"] is None
    notice = page.locator(f'#closed-notices li[data-interrupt-id="{question["id"]}"]')
    expect(notice).to_contain_text("Rejected — answered by")
    expect(notice.locator("[data-comment]")).to_have_text("Reason: Not in this quarter's budget")

    page.goto(f"/#/runs/{run['run_id']}")
    answered = page.locator(f'#run-interrupts li[data-interrupt-id="{question["id"]}"]')
    expect(answered).to_contain_text("Rejected — answered by")
    expect(answered.locator("[data-comment]")).to_have_text("Reason: Not in this quarter's budget")


def test_a_comment_on_an_approval_is_not_a_reason(tab: Tab, client: httpx.Client) -> None:
    run = start(client, "naming", HI)
    question = next_interrupt(client, run["run_id"])
    page = tab.page
    page.goto("/")
    approval = asked(page, question["id"])
    approval.get_by_label("Reason or comment (optional)").fill("fine by me")
    approval.get_by_role("button", name="Approve").click()
    expect(approval).to_have_count(0)
    assert read_interrupt(client, question["id"])["resolution"]["comment"] == "fine by me"
    page.goto(f"/#/runs/{run['run_id']}")
    answered = page.locator(f'#run-interrupts li[data-interrupt-id="{question["id"]}"]')
    expect(answered.locator("[data-comment]")).to_have_text("Comment: fine by me")


def test_selected_approvals_are_answered_at_once(tab: Tab, client: httpx.Client) -> None:
    clear_inbox(client)
    runs = [start(client, "naming", HI) for _ in range(4)]
    questions = [next_interrupt(client, r["run_id"]) for r in runs]
    page = tab.page
    # the page hears of no answer given elsewhere: the bulk answer's results must say it
    silence_websocket(page)
    page.goto("/")
    for r in runs:
        expect(card(page, r["run_id"])).to_have_count(1)
    bar = page.locator("#bulk-form")
    expect(bar).to_be_hidden()

    card(page, runs[0]["run_id"]).get_by_role("checkbox").check()
    expect(bar).to_be_visible()
    expect(bar.locator("[data-count]")).to_have_text("1 selected")
    page.get_by_label("Select all shown").check()
    expect(bar.locator("[data-count]")).to_have_text("4 selected")
    card(page, runs[3]["run_id"]).get_by_role("checkbox").uncheck()
    expect(bar.locator("[data-count]")).to_have_text("3 selected")
    expect(page.get_by_label("Select all shown")).not_to_be_checked()

    # one of the three is answered elsewhere first
    answer(client, questions[1]["id"], False)
    bar.get_by_label("Reason or comment (optional)").fill("batch approval")
    screenshot(page, "bulk.png", full_page=True)
    page.set_viewport_size(PHONE)
    assert page.evaluate(OVERFLOW) <= 0
    bar.get_by_role("button", name="Approve selected").click()

    results = page.locator("#bulk-results")
    expect(results.locator("[data-summary]")).to_have_text("2 answered, 1 refused:")
    refused = results.locator(f'li[data-interrupt-id="{questions[1]["id"]}"]')
    expect(refused).to_have_attribute("data-status", "409")
    expect(refused).to_contain_text("already_resolved")
    for n in (0, 2):
        got = read_interrupt(client, questions[n]["id"])
        assert got["status"] == "resolved"
        assert got["resolution"]["value"] is True
        assert got["resolution"]["comment"] == "batch approval"
        expect(asked(page, questions[n]["id"])).to_have_count(0)
    # the one answered elsewhere keeps its own answer, and the unselected one stays open
    assert read_interrupt(client, questions[1]["id"])["resolution"]["value"] is False
    assert read_interrupt(client, questions[3]["id"])["status"] == "pending"
    expect(card(page, runs[3]["run_id"]).get_by_role("checkbox")).not_to_be_checked()
    expect(bar).to_be_hidden()
    for n in (0, 2):
        wait_status(client, runs[n]["run_id"], "interrupted", "succeeded")


def test_other_kinds_are_answered_at_once_with_json(tab: Tab, client: httpx.Client) -> None:
    clear_inbox(client)
    runs = [start(client, "typed", {}) for _ in range(2)]
    questions = [next_interrupt(client, r["run_id"]) for r in runs]
    page = tab.page
    page.goto("/")
    for r in runs:
        expect(card(page, r["run_id"])).to_have_count(1)
    page.get_by_label("Select all shown").check()
    bar = page.locator("#bulk-form")
    expect(bar.get_by_role("button", name="Approve selected")).to_have_count(0)
    editor = bar.get_by_label("Answer for all (JSON)")
    editor.fill("{not json")
    bar.get_by_role("button", name="Send to selected").click()
    expect(bar.locator("[data-error]")).to_contain_text("not valid JSON")
    editor.fill('{"name": "Ada", "age": 36}')
    bar.get_by_role("button", name="Send to selected").click()
    expect(page.locator("#bulk-results [data-summary]")).to_have_text("2 answered.")
    for q in questions:
        assert read_interrupt(client, q["id"])["resolution"]["value"] == {"name": "Ada", "age": 36}
    for r in runs:
        expect(card(page, r["run_id"])).to_have_count(0)


def test_a_name_in_answer_as_is_sent_only_when_typed(tab: Tab, client: httpx.Client) -> None:
    """Auth off: the open principal may name the answerer, so the name is recorded."""
    run = start(client, "naming", HI)
    question = next_interrupt(client, run["run_id"])
    page = tab.page
    page.goto("/")
    # the page reads "Answer as" once it has started: a name typed before would be lost
    expect(card(page, run["run_id"])).to_have_count(1)
    page.get_by_label("Answer as").fill("grace")
    page.get_by_label("Answer as").press("Tab")
    card(page, run["run_id"]).get_by_role("button", name="Approve").click()
    expect(page.locator("#closed-notices")).to_contain_text(re.compile("answered by grace"))
    assert read_interrupt(client, question["id"])["resolution"]["resolved_by"] == "grace"
