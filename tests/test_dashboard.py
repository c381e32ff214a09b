"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) against a real
API and worker: starting runs, answering every kind of interrupt, two people answering
the same one, live updates, polling, API keys, keyboard use and a phone-width screen."""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import redis
from playwright.sync_api import (
    Browser,
    Page,
    WebSocketRoute,
    expect,
)

from broker.core.keys import Keys
from tests.browser import (
    NEEDS_CHROMIUM,
    PHONE,
    Tab,
    card,
    clear_inbox,
    launch,
    open_tab,
    refuse_websocket,
    screenshot,
    silence_websocket,
)
from tests.flow import answer, next_interrupt, start, wait_status
from tests.harness import TEST_AGENTS, Broker, wait_until

pytestmark = [
    pytest.mark.slow,
    NEEDS_CHROMIUM,
]
expect.set_options(timeout=30_000)

DASHBOARD_AGENTS = (
    f"{TEST_AGENTS},review=tests.dashboard_graphs:review,tagged=tests.dashboard_graphs:tagged"
)
HI = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def dash(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """An API and a worker serving the test agents and the dashboard's own."""
    prefix = f"ibt{uuid.uuid4().hex[:10]}"
    b = Broker(redis_url, prefix, tmp_path_factory.mktemp("dash"), BROKER_AGENTS=DASHBOARD_AGENTS)
    with b.serving():
        yield b


@pytest.fixture
def client(dash: Broker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=dash.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch() as b:
        yield b


@pytest.fixture
def tabs(browser: Browser, dash: Broker) -> Iterator[list[Tab]]:
    """Opened tabs; afterwards none may have thrown or asked another origin for anything."""
    opened: list[Tab] = []
    yield opened
    try:
        for tab in opened:
            assert tab.foreign() == [], f"requests off the broker's origin: {tab.foreign()}"
            assert tab.errors == [], f"errors in the page: {tab.errors}"
    finally:
        for tab in opened:
            tab.page.context.close()


@pytest.fixture
def tab(browser: Browser, dash: Broker, tabs: list[Tab]) -> Tab:
    t = open_tab(browser, dash.url)
    tabs.append(t)
    return t


def set_answerer(page: Page, name: str) -> None:
    page.get_by_label("Answer as").fill(name)
    page.get_by_label("Answer as").press("Tab")


def resolution(client: httpx.Client, interrupt_id: str) -> dict[str, Any]:
    got: dict[str, Any] = client.get(f"/interrupts/{interrupt_id}").json()
    return got


def test_page_and_assets_are_served_with_a_strict_policy(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy
    script = client.get("/static/js/app.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert client.get("/static/js/nope.js").status_code == 404
    # every module is loaded by path from this origin: no CDN, no external font
    for path in sorted((Path(__file__).parent.parent / "broker" / "static").rglob("*.*")):
        text = path.read_text()
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), path


def test_every_request_stays_on_the_broker_origin(tab: Tab, client: httpx.Client) -> None:
    run = start(client, "naming", HI)
    next_interrupt(client, run["run_id"])
    page = tab.page
    page.goto("/")
    expect(page.locator("#live")).to_have_text("Live")
    expect(card(page, run["run_id"], "approval")).to_have_count(1)
    page.get_by_role("link", name="Runs").click()
    expect(page.locator(f'#runs-table tr[data-run-id="{run["run_id"]}"]')).to_have_count(1)
    page.locator(f'#runs-table tr[data-run-id="{run["run_id"]}"] a').click()
    expect(page.locator("#run-timeline")).to_contain_text("run.interrupted")
    paths = {urlsplit(u).path for u in tab.urls}
    # the recorder saw the page, its assets, the API, the WebSocket and the SSE stream
    assert {"/", "/static/style.css", "/static/js/app.js", "/ws", "/interrupts"} <= paths
    assert f"/runs/{run['run_id']}/events" in paths
    assert tab.foreign() == []


def test_naming_run_started_and_answered_from_the_page(tab: Tab, client: httpx.Client) -> None:
    page = tab.page
    page.goto("/")
    expect(page.locator("#live")).to_have_text("Live")
    set_answerer(page, "ada")

    page.get_by_role("link", name="Runs").click()
    agents = page.locator("#start-form").get_by_label("Agent")
    for agent in ("naming", "scheduling", "tool_approval", "parallel"):
        expect(agents.locator(f'option[value="{agent}"]')).to_have_count(1)
    agents.select_option("naming")
    expect(page.locator("#start-form").get_by_label("Message", exact=True)).to_have_value("hi")
    page.get_by_role("button", name="Start run").click()
    expect(page).to_have_url(re.compile(r"#/runs/[0-9a-f-]+$"))
    run_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("#run-facts .status")).to_have_text("interrupted")

    page.get_by_role("link", name=re.compile("^Inbox")).click()
    approval = card(page, run_id, "approval")
    expect(approval).to_contain_text("please approve")
    screenshot(page, "inbox.png", full_page=True)
    approval.get_by_role("button", name="Approve").click()
    expect(approval).to_have_count(0)

    ask = card(page, run_id, "ask")
    expect(ask).to_contain_text("what would you like to call me?")
    ask.get_by_label("Your answer").fill("Ada")
    ask.get_by_role("button", name="Send").click()
    expect(ask).to_have_count(0)
    expect(page.locator("#closed-notices")).to_contain_text("“Ada” — answered by ada")

    page.goto(f"/#/runs/{run_id}")
    expect(page.locator("#run-facts .status")).to_have_text("succeeded")
    expect(page.locator("#run-final")).to_contain_text("Hello, I'm Ada")
    expect(page.locator("#run-timeline")).to_contain_text("run.succeeded")
    expect(page.locator("#run-interrupts")).to_contain_text("Approved — answered by ada")
    expect(page.locator("#run-stream")).to_contain_text("has finished")
    screenshot(page, "run-detail.png", full_page=True)
    assert client.get(f"/runs/{run_id}").json()["status"] == "succeeded"


def test_a_run_started_with_json_input_shows_its_error(tab: Tab) -> None:
    page = tab.page
    page.goto("/#/runs")
    form = page.locator("#start-form")
    form.get_by_label("Agent").select_option("failing")
    form.get_by_text("More: thread, or the whole input as JSON").click()
    form.get_by_label("Input JSON (replaces the message when filled)").fill("{oops")
    form.get_by_role("button", name="Start run").click()
    expect(form.locator("[data-error]")).to_contain_text("The input is not valid JSON")
    form.get_by_label("Input JSON (replaces the message when filled)").fill('{"answer": 1}')
    form.get_by_role("button", name="Start run").click()
    expect(page).to_have_url(re.compile(r"#/runs/[0-9a-f-]+$"))
    expect(page.locator("#run-facts .status")).to_have_text("failed")
    expect(page.locator("#run-error")).to_contain_text("the node failed on purpose")
    expect(page.locator("#run-timeline li[data-type='run.failed']")).to_have_count(1)
    page.locator("#run-facts summary", has_text="Input").click()
    expect(page.locator("#run-facts pre")).to_contain_text('"answer": 1')


def test_scheduling_slot_chosen_in_the_inbox(tab: Tab, client: httpx.Client) -> None:
    text = "Book a call with Alice about the Q3 roadmap"
    run = start(client, "scheduling", {"messages": [{"role": "user", "content": text}]})
    question = next_interrupt(client, run["run_id"])
    slot = question["value"]["slots"][2]

    page = tab.page
    page.goto("/")
    slots = card(page, run["run_id"], "slots")
    expect(slots).to_contain_text("Topic: the Q3 roadmap · With: Alice")
    expect(slots.locator(".slots button")).to_have_count(4)
    expect(slots.get_by_role("button", name="Cancel meeting")).to_be_visible()
    slots.get_by_role("button", name=slot["label"]).click()
    expect(slots).to_have_count(0)

    done = wait_status(client, run["run_id"], "succeeded")
    assert f"Meeting scheduled for {slot['label']}" in done["output"]["final_message"]
    got = resolution(client, question["id"])["resolution"]["value"]
    assert got == {"chosen_time": slot["iso"], "chosen_label": slot["label"]}


def test_tool_call_arguments_edited_before_approval(tab: Tab, client: httpx.Client) -> None:
    text = "Send an email to bob@example.com about the launch"
    run = start(client, "tool_approval", {"messages": [{"role": "user", "content": text}]})
    question = next_interrupt(client, run["run_id"])

    page = tab.page
    page.goto("/")
    review = card(page, run["run_id"], "review")
    action = review.locator('fieldset[data-action="send_email"]')
    radios = action.get_by_role("radio")
    expect(radios).to_have_count(3)
    expect(action.locator(".choices")).to_have_text(re.compile("Approve\\s*Edit\\s*Reject"))
    expect(action.get_by_label("to", exact=True)).to_be_hidden()
    action.get_by_label("Edit").check()
    action.get_by_label("to", exact=True).fill("carol@example.com")
    review.get_by_role("button", name="Send decision").click()
    expect(review).to_have_count(0)

    done = wait_status(client, run["run_id"], "succeeded")
    assert "Email sent to carol@example.com" in done["output"]["final_message"]
    decision = resolution(client, question["id"])["resolution"]["value"]["decisions"][0]
    assert decision["type"] == "edit"
    assert decision["edited_action"]["name"] == "send_email"
    assert decision["edited_action"]["args"]["to"] == "carol@example.com"


def test_review_offers_only_the_allowed_decisions(tab: Tab, client: httpx.Client) -> None:
    run = start(client, "review", {})
    question = next_interrupt(client, run["run_id"])
    page = tab.page
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.goto("/")
    review = card(page, run["run_id"], "review")
    second = review.locator('fieldset[data-action="delete_file"]')
    expect(second.get_by_role("radio")).to_have_count(2)
    expect(second.get_by_label("Edit")).to_have_count(0)

    review.get_by_role("button", name="Send decisions").click()
    expect(review.locator("p.error").first).to_contain_text("choose a decision for send_email")
    assert posts == []

    review.locator('fieldset[data-action="send_email"]').get_by_label("Approve").check()
    second.get_by_label("Reject").check()
    second.get_by_label("Message to the agent").fill("keep that file")
    review.get_by_role("button", name="Send decisions").click()
    expect(review).to_have_count(0)
    assert resolution(client, question["id"])["resolution"]["value"] == {
        "decisions": [{"type": "approve"}, {"type": "reject", "message": "keep that file"}]
    }


def test_json_answer_is_checked_against_the_schema_before_sending(
    tab: Tab, client: httpx.Client
) -> None:
    run = start(client, "typed", {})
    question = next_interrupt(client, run["run_id"])
    page = tab.page
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.goto("/")
    form = card(page, run["run_id"], "json")
    expect(form.locator("details.schema pre")).to_contain_text('"additionalProperties": false')
    editor = form.get_by_label("Answer (JSON)")
    expect(editor).to_have_value(re.compile(r'"name": ""'))

    editor.fill("{not json")
    form.get_by_role("button", name="Send").click()
    expect(form.locator("p.error").first).to_contain_text("not valid JSON")
    editor.fill('{"age": -1}')
    form.get_by_role("button", name="Send").click()
    expect(form.locator("[data-error]")).to_have_text(
        'Not sent: the answer does not fit the expected shape. At /: "name" is required.'
    )
    editor.fill('{"name": "Ada", "age": -1}')
    form.get_by_role("button", name="Send").click()
    expect(form.locator("[data-error]")).to_contain_text("At /age: must be ≥ 0")
    assert posts == []

    editor.fill('{"name": "Ada", "age": 36}')
    form.get_by_role("button", name="Send").click()
    expect(form).to_have_count(0)
    assert resolution(client, question["id"])["resolution"]["value"] == {"name": "Ada", "age": 36}


def test_a_refusal_by_the_broker_is_shown_next_to_the_form(tab: Tab, client: httpx.Client) -> None:
    run = start(client, "tagged", {})
    next_interrupt(client, run["run_id"])
    page = tab.page
    page.goto("/")
    form = card(page, run["run_id"], "json")
    editor = form.get_by_label("Answer (JSON)")
    # the page's small validator leaves uniqueItems to the broker, which answers 422
    editor.fill('{"tags": ["a", "a"]}')
    form.get_by_role("button", name="Send").click()
    expect(form.locator("[data-error]")).to_contain_text(
        "The broker did not accept this answer: answer at /tags:"
    )
    expect(form.get_by_role("button", name="Send")).to_be_enabled()
    editor.fill('{"tags": ["a", "b"]}')
    form.get_by_role("button", name="Send").click()
    expect(form).to_have_count(0)
    wait_status(client, run["run_id"], "succeeded")


def test_a_question_changed_since_the_card_showed_it_is_refused_in_words(
    tab: Tab, client: httpx.Client, dash: Broker, redis_url: str
) -> None:
    # docs/design.md, "Answers bound to what was shown"
    run = start(client, "counter", {})
    iid = next_interrupt(client, run["run_id"])["id"]
    page = tab.page
    page.goto("/")
    shown = card(page, run["run_id"], "approval")
    expect(shown).to_contain_text("count me")
    # the question changes underneath the open card (as a node that ran again and asked
    # about other arguments would): its value and fingerprint, rewritten in the store
    r = redis.Redis.from_url(redis_url)
    key = Keys(dash.env["BROKER_KEY_PREFIX"]).interrupt(iid)
    changed = {"type": "approval", "content": "count me twice"}
    r.hset(key, mapping={"value": json.dumps(changed), "fingerprint": "changed-underneath"})
    r.close()

    shown.get_by_role("button", name="Approve").click()
    renewed = page.locator(f'#inbox-list li.interrupt[data-interrupt-id="{iid}"][data-renewed]')
    expect(renewed.locator("[data-error]")).to_contain_text(
        "This question changed since you opened it; review the new version"
    )
    expect(renewed).to_contain_text("count me twice")
    assert resolution(client, iid)["status"] == "pending"
    trail = client.get(f"/interrupts/{iid}/audit").json()["items"]
    assert [e["outcome"] for e in trail] == ["fingerprint_mismatch"]

    # the new card answers the question as it is now
    renewed.get_by_role("button", name="Approve").click()
    wait_status(client, run["run_id"], "succeeded")
    expect(renewed).to_have_count(0)


def test_an_answer_elsewhere_removes_the_card_and_says_who(
    browser: Browser, dash: Broker, tabs: list[Tab], client: httpx.Client
) -> None:
    run = start(client, "naming", HI)
    question = next_interrupt(client, run["run_id"])
    first, second = open_tab(browser, dash.url), open_tab(browser, dash.url)
    tabs.extend([first, second])
    for t in (first, second):
        t.page.goto("/")
        expect(card(t.page, run["run_id"], "approval")).to_have_count(1)
    set_answerer(first.page, "alice")

    card(first.page, run["run_id"], "approval").get_by_role("button", name="Approve").click()

    expect(card(second.page, run["run_id"], "approval")).to_have_count(0)
    notice = second.page.locator(f'#closed-notices li[data-interrupt-id="{question["id"]}"]')
    expect(notice).to_contain_text("Approved — answered by alice via the REST API")
    # the run's next question reaches both pages without a reload
    expect(card(second.page, run["run_id"], "ask")).to_have_count(1)
    expect(card(first.page, run["run_id"], "ask")).to_have_count(1)


def test_when_both_answer_the_second_is_told_who_won(
    browser: Browser, dash: Broker, tabs: list[Tab], client: httpx.Client
) -> None:
    run = start(client, "naming", HI)
    next_interrupt(client, run["run_id"])
    first, second = open_tab(browser, dash.url), open_tab(browser, dash.url)
    tabs.extend([first, second])
    # the second page's news of the first answer is still on its way
    silence_websocket(second.page)
    for t in (first, second):
        t.page.goto("/")
        expect(card(t.page, run["run_id"], "approval")).to_have_count(1)
    set_answerer(first.page, "alice")
    set_answerer(second.page, "bob")

    card(first.page, run["run_id"], "approval").get_by_role("button", name="Approve").click()
    expect(card(first.page, run["run_id"], "approval")).to_have_count(0)
    late = card(second.page, run["run_id"], "approval")
    late.get_by_role("button", name="Reject").click()

    expect(late.locator("[data-error]")).to_contain_text(
        "Someone else answered first: alice via the REST API answered Approved"
    )
    expect(late.locator("[data-error]")).to_contain_text("Your answer was not used.")
    expect(late.get_by_role("button", name="Approve")).to_be_disabled()
    late.get_by_role("button", name="Dismiss").click()
    expect(late).to_have_count(0)


def test_an_expired_interrupt_says_so(
    tab: Tab, client: httpx.Client, dash: Broker, redis_url: str
) -> None:
    run = start(client, "expiring_later", {})
    question = next_interrupt(client, run["run_id"])
    page = tab.page
    silence_websocket(page)
    page.goto("/")
    stale = card(page, run["run_id"], "approval")
    expect(stale).to_contain_text("answer or fail")
    expect(stale).to_contain_text("expires")
    # the deadline comes now, on the broker's clock, rather than after a wait the page
    # might not meet on a loaded machine
    keys = Keys(dash.env["BROKER_KEY_PREFIX"])
    r = redis.Redis.from_url(redis_url)
    try:
        past = int(time.time() * 1000) - 1
        r.hset(keys.interrupt(question["id"]), "expires_at_ms", past)
        r.zadd(keys.deadlines, {question["id"]: past})
    finally:
        r.close()
    wait_until(
        lambda: resolution(client, question["id"])["status"] == "expired", "the deadline to pass"
    )
    stale.get_by_role("button", name="Approve").click()
    expect(stale.locator("[data-error]")).to_contain_text("This question expired")


def test_a_new_interrupt_appears_and_filters_order_and_counts_apply(
    tab: Tab, client: httpx.Client
) -> None:
    clear_inbox(client)
    page = tab.page
    page.goto("/")
    expect(page.locator("#inbox-empty")).to_be_visible()
    runs = [start(client, "naming", HI)]
    expect(card(page, runs[0]["run_id"])).to_have_count(1)
    runs.append(start(client, "naming", HI))
    expect(card(page, runs[1]["run_id"])).to_have_count(1)
    text = "Book a call with Alice about the Q3 roadmap"
    runs.append(start(client, "scheduling", {"messages": [{"role": "user", "content": text}]}))
    expect(card(page, runs[2]["run_id"])).to_have_count(1)

    counts = page.locator("#agent-counts")
    expect(counts.locator("button")).to_have_text(["naming 2", "scheduling 1"])
    expect(page.locator("#inbox-count")).to_have_text("3")
    ids = [r["run_id"] for r in runs]
    items = page.locator("#inbox-list li.interrupt")
    expect(items).to_have_count(3)
    assert [items.nth(i).get_attribute("data-run-id") for i in range(3)] == ids

    filters = page.locator("#inbox-filters")
    filters.get_by_label("Order").select_option("desc")
    expect(items.first).to_have_attribute("data-run-id", ids[2])
    expect(items.last).to_have_attribute("data-run-id", ids[0])

    filters.get_by_label("Agent").select_option("scheduling")
    expect(items).to_have_count(1)
    expect(page.locator("#inbox-summary")).to_have_text("Showing 1 of 3 pending")
    filters.get_by_label("Agent").select_option("")
    filters.get_by_label("Type").select_option("approval")
    expect(items).to_have_count(2)
    filters.get_by_label("Type").select_option("")
    filters.get_by_label("Thread").fill(runs[1]["thread_id"][:13])
    expect(items).to_have_count(1)
    expect(items.first).to_have_attribute("data-run-id", ids[1])
    filters.get_by_label("Thread").fill("")
    counts.get_by_role("button", name="scheduling 1").click()
    expect(items).to_have_count(1)
    expect(items.first).to_have_attribute("data-run-id", ids[2])


def test_answering_with_the_keyboard_only(tab: Tab, client: httpx.Client) -> None:
    clear_inbox(client)
    run = start(client, "naming", HI)
    next_interrupt(client, run["run_id"])
    page = tab.page
    page.goto("/")
    approve = card(page, run["run_id"], "approval").get_by_role("button", name="Approve")
    expect(approve).to_be_visible()
    for _ in range(40):
        page.keyboard.press("Tab")
        if approve.evaluate("el => el === document.activeElement"):
            break
    else:
        pytest.fail("Tab never reached the Approve button")
    expect(approve).to_be_focused()
    page.keyboard.press("Enter")
    ask = card(page, run["run_id"], "ask")
    expect(ask).to_have_count(1)
    answer_box = ask.get_by_label("Your answer")
    for _ in range(40):
        page.keyboard.press("Tab")
        if answer_box.evaluate("el => el === document.activeElement"):
            break
    else:
        pytest.fail("Tab never reached the answer box")
    page.keyboard.type("Kay")
    page.keyboard.press("Enter")
    expect(ask).to_have_count(0)
    done = wait_status(client, run["run_id"], "succeeded")
    assert "I'm Kay" in done["output"]["final_message"]


def test_phone_width_has_no_horizontal_overflow(
    browser: Browser, dash: Broker, tabs: list[Tab], client: httpx.Client
) -> None:
    clear_inbox(client)
    text = "Send an email to bob@example.com about the launch"
    review = start(client, "tool_approval", {"messages": [{"role": "user", "content": text}]})
    text = "Book a call with Alice about the Q3 roadmap"
    slots = start(client, "scheduling", {"messages": [{"role": "user", "content": text}]})
    naming = start(client, "naming", HI)
    laptop, phone = open_tab(browser, dash.url), open_tab(browser, dash.url, PHONE)
    tabs.extend([laptop, phone])
    laptop.page.goto("/")
    expect(card(laptop.page, naming["run_id"], "approval")).to_be_visible()
    expect(laptop.page.locator("#inbox-list li.interrupt")).to_have_count(3)
    # every kind of form at once: the picture in the README
    screenshot(laptop.page, "inbox-kinds.png", full_page=True)

    page = phone.page
    page.goto("/")
    expect(card(page, review["run_id"], "review")).to_be_visible()
    expect(card(page, slots["run_id"], "slots")).to_be_visible()
    card(page, review["run_id"]).locator("details summary").click()
    screenshot(page, "inbox-phone.png", full_page=True)
    overflow = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    assert page.evaluate(overflow) <= 0
    page.goto(f"/#/runs/{review['run_id']}")
    expect(page.locator("#run-timeline")).to_contain_text("run.interrupted")
    assert page.evaluate(overflow) <= 0
    page.goto("/#/runs")
    expect(page.locator("#runs-table tbody tr").first).to_be_visible()
    assert page.evaluate(overflow) <= 0


def test_run_detail_follows_a_running_run(tab: Tab, client: httpx.Client) -> None:
    run = start(client, "naming", HI)
    first = next_interrupt(client, run["run_id"])
    page = tab.page
    page.goto(f"/#/runs/{run['run_id']}")
    timeline = page.locator("#run-timeline")
    expect(timeline).to_contain_text("run.interrupted")
    expect(page.locator("#run-pending li.interrupt")).to_have_count(1)

    answer(client, first["id"], True, resolved_by="ops")
    expect(timeline).to_contain_text("interrupt.resolved — Approved by ops via the REST API")
    ask = page.locator('#run-pending li.interrupt[data-kind="ask"]')
    expect(ask).to_have_count(1)
    ask.get_by_label("Your answer").fill("Zed")
    ask.get_by_role("button", name="Send").click()
    expect(page.locator("#run-facts .status")).to_have_text("succeeded")
    expect(page.locator("#run-final")).to_contain_text("I'm Zed")
    expect(timeline.locator('li[data-type="run.succeeded"]')).to_have_count(1)
    expect(page.locator("#run-interrupts li[data-status=resolved]")).to_have_count(2)


def test_parallel_approvals_are_answered_one_by_one(tab: Tab, client: httpx.Client) -> None:
    run = start(client, "parallel", HI)
    wait_status(client, run["run_id"], "interrupted", pending=2)
    page = tab.page
    page.goto("/")
    both = card(page, run["run_id"], "approval")
    expect(both).to_have_count(2)
    both.first.get_by_role("button", name="Approve").click()
    expect(both).to_have_count(1)
    assert client.get(f"/runs/{run['run_id']}").json()["status"] != "succeeded"
    both.first.get_by_role("button", name="Reject").click()
    expect(both).to_have_count(0)
    wait_status(client, run["run_id"], "succeeded")


def test_polling_takes_over_when_websockets_are_refused(tab: Tab, client: httpx.Client) -> None:
    page = tab.page
    refuse_websocket(page)
    page.goto("/")
    expect(page.locator("#live")).to_contain_text("Polling")
    with page.expect_response(lambda r: "/interrupts?" in r.url and r.status == 304):
        pass
    run = start(client, "naming", HI)
    waiting = card(page, run["run_id"], "approval")
    expect(waiting).to_have_count(1)
    question = next_interrupt(client, run["run_id"])
    answer(client, question["id"], True, resolved_by="bob")
    expect(waiting).to_have_count(0)
    notice = page.locator(f'#closed-notices li[data-interrupt-id="{question["id"]}"]')
    expect(notice).to_contain_text("answered by bob")


def test_a_dropped_websocket_resumes_after_the_last_event(tab: Tab, client: httpx.Client) -> None:
    page = tab.page
    routes: list[WebSocketRoute] = []
    seen: list[list[str]] = []

    def through(ws: WebSocketRoute) -> None:
        ids: list[str] = []
        routes.append(ws)
        seen.append(ids)
        server = ws.connect_to_server()

        def to_page(message: str | bytes) -> None:
            frame = json.loads(message)
            if "." in frame.get("type", ""):
                ids.append(frame["id"])
            ws.send(message)

        server.on_message(to_page)

    page.route_web_socket("**/ws**", through)
    page.goto("/")
    expect(page.locator("#live")).to_have_text("Live")
    first = start(client, "naming", HI)
    expect(card(page, first["run_id"], "approval")).to_have_count(1)
    assert "after=" not in routes[0].url

    with page.expect_websocket() as reconnect:
        routes[0].close(code=1011)
    # every frame that reached the page passed through the first route
    assert f"after={seen[0][-1]}" in reconnect.value.url
    expect(page.locator("#live")).to_have_text("Live")
    second = start(client, "naming", HI)
    expect(card(page, second["run_id"], "approval")).to_have_count(1)


KEY = "dashboard-test-key-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def locked(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A broker with auth on and one admin key, stored by its SHA-256 only."""
    prefix = f"ibt{uuid.uuid4().hex[:10]}"
    keys = [
        {"id": "ops", "key_sha256": hashlib.sha256(KEY.encode()).hexdigest(), "scopes": ["admin"]}
    ]
    b = Broker(
        redis_url,
        prefix,
        tmp_path_factory.mktemp("locked"),
        BROKER_AUTH="on",
        BROKER_API_KEYS=json.dumps(keys),
    )
    with b.serving():
        yield b


def test_api_key_is_asked_once_and_kept_for_the_tab(
    browser: Browser, locked: Broker, tabs: list[Tab]
) -> None:
    with httpx.Client(base_url=locked.url, timeout=30) as anonymous:
        assert anonymous.get("/").status_code == 200
        assert anonymous.get("/static/js/api.js").status_code == 200
        assert anonymous.get("/interrupts").status_code == 401
    t = open_tab(browser, locked.url)
    tabs.append(t)
    page = t.page
    page.goto("/")
    dialog = page.get_by_role("dialog", name="API key")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Key").fill("not-the-key")
    dialog.get_by_role("button", name="Use this key").click()
    expect(dialog.locator("[data-error]")).to_contain_text("not valid")
    dialog.get_by_label("Key").fill(KEY)
    dialog.get_by_role("button", name="Use this key").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#live")).to_have_text("Live")

    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=locked.url, timeout=30, headers=headers) as client:
        run = start(client, "naming", HI)
        expect(card(page, run["run_id"], "approval")).to_have_count(1)
        page.reload()
        expect(page.locator("#live")).to_have_text("Live")
        expect(dialog).to_be_hidden()
        card(page, run["run_id"], "approval").get_by_role("button", name="Approve").click()
        expect(card(page, run["run_id"], "ask")).to_have_count(1)
        page.goto(f"/#/runs/{run['run_id']}")
        expect(page.locator("#run-timeline")).to_contain_text(
            "interrupt.resolved — Approved by ops"
        )
        assert page.evaluate("sessionStorage.getItem('broker.apiKey')") == KEY
        assert next_interrupt(client, run["run_id"])["type"] == "ask"
