"""The dashboard and the decision rules in a real browser (Debian's Chromium, driven by
Playwright) against a real API and worker: the votes so far on an interrupt several
people decide ("Quorum and chains"; people signed in with tokens of a real OpenID
provider), and an answer held for its undo window ("Undo window"): its countdown, Undo,
and the run resuming once the window closed."""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, expect

from broker.core import auth
from tests.browser import (
    NEEDS_CHROMIUM,
    Tab,
    asked,
    checked_tab,
    launch,
    record_texts,
    refuse_websocket,
    screenshot,
    sign_in_with,
    silence_websocket,
)
from tests.flow import next_interrupt, read_interrupt, start, wait_status
from tests.harness import Broker, wait_until
from tests.oidc import ACCOUNTS, OidcProvider, available, oidc_provider
from tests.principals import KeySpec, headers, keys_json, new_key

pytestmark = [
    pytest.mark.slow,
    NEEDS_CHROMIUM,
    pytest.mark.skipif(not available(), reason="node or tests/node/node_modules is missing"),
]
expect.set_options(timeout=30_000)

KEYS: dict[str, KeySpec] = {"ops": (new_key("ops"), [auth.ADMIN], None)}
PEOPLE: dict[str, dict[str, Any]] = {
    **ACCOUNTS,  # ada is in finance
    "carl": {"email": "carl@example.com", "name": "Carl", "groups": ["finance"]},
    "lena": {"email": "lena@example.com", "name": "Lena", "groups": ["legal"]},
    "cfo": {"email": "cfo@example.com", "name": "The CFO", "groups": []},
}
HI = {"messages": [{"role": "user", "content": "hi"}]}
# counter's question is held 2 s, every other one 30 s
UNDO = [{"agent": "counter", "undo_s": 2}, {"undo_s": 30}]
HELD = re.compile(r"^(Approved|Rejected) — resuming in \d+ s · Undo$")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch() as b:
        yield b


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    with oidc_provider(tmp_path_factory.mktemp("oidc-rules"), accounts=PEOPLE) as provider:
        yield provider


@pytest.fixture(scope="module")
def voting(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory, people: OidcProvider
) -> Iterator[Broker]:
    """Keys and people's tokens required: a vote is a person's (an answer on someone's
    behalf, as every answer with auth off is, decides outright)."""
    b = Broker(
        redis_url,
        f"ibt{uuid.uuid4().hex[:10]}",
        tmp_path_factory.mktemp("votes"),
        BROKER_AUTH="on",
        BROKER_API_KEYS=keys_json(KEYS),
        **people.broker_env(client_id=False),
    )
    with b.serving():
        yield b


@pytest.fixture(scope="module")
def undoing(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """Auth off, and answers held for an undo window (BROKER_UNDO)."""
    prefix = f"ibt{uuid.uuid4().hex[:10]}"
    b = Broker(redis_url, prefix, tmp_path_factory.mktemp("undo"), BROKER_UNDO=json.dumps(UNDO))
    with b.serving():
        yield b


@pytest.fixture
def client(undoing: Broker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=undoing.url, timeout=30) as c:
        yield c


@pytest.fixture
def tab(browser: Browser, undoing: Broker) -> Iterator[Tab]:
    with checked_tab(browser, undoing.url) as t:
        yield t


@pytest.fixture
def ops(voting: Broker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=voting.url, timeout=30, headers=headers(KEYS, "ops")) as c:
        yield c


@pytest.fixture
def tab_as(
    browser: Browser, voting: Broker, people: OidcProvider
) -> Iterator[Callable[[str], Tab]]:
    """Opens a tab signed in as an account of the provider; afterwards none may have
    thrown or asked another origin for anything."""
    with contextlib.ExitStack() as tabs:

        def open_as(sub: str) -> Tab:
            t = tabs.enter_context(checked_tab(browser, voting.url))
            sign_in_with(t.page, people.mint(sub=sub))
            return t

        yield open_as


def vote(client: httpx.Client, people: OidcProvider, iid: str, sub: str) -> dict[str, Any]:
    """``sub``'s approval over REST, with their own token."""
    token = {"Authorization": f"Bearer {people.mint(sub=sub)}"}
    r = client.post(f"/interrupts/{iid}/resolve", json={"value": True}, headers=token)
    assert r.status_code == 200, r.text
    got: dict[str, Any] = r.json()
    return got


def test_a_vote_that_decides_nothing_leaves_the_card_open_with_the_votes_so_far(
    tab_as: Callable[[str], Tab], ops: httpx.Client, people: OidcProvider
) -> None:
    run = start(ops, "quorum", {})
    question = next_interrupt(ops, run["run_id"])
    iid = question["id"]
    page = tab_as("ada").page
    page.goto("/")
    expect(page.locator("#person-name")).to_have_text("ada@example.com")
    approval = asked(page, iid)
    summary = approval.locator("[data-approval-summary]")
    expect(summary).to_have_text("0 of 2 approvals · group:finance")
    expect(approval.locator("[data-no-votes]")).to_have_text("No votes yet.")

    approval.get_by_label("Reason or comment (optional)").fill("the numbers add up")
    approval.get_by_role("button", name="Approve").click()
    # the broker said 200 with the interrupt still pending: the card stays, with the vote
    expect(summary).to_have_text("1 of 2 approvals · group:finance")
    votes = approval.locator("[data-vote]")
    expect(votes).to_have_count(1)
    expect(votes).to_contain_text("ada@example.com approved")
    expect(votes.locator("[data-comment]")).to_have_text(" — “the numbers add up”")
    expect(approval.locator("[data-note]")).to_have_text(
        "Your vote is recorded: 1 of 2 approvals · group:finance."
    )
    expect(approval.get_by_label("Reason or comment (optional)")).to_have_value("")
    got = read_interrupt(ops, iid)
    assert got["status"] == "pending"
    assert got["approval"]["state"] == "collecting"
    assert [(v["by"]["sub"], v["vote"]) for v in got["approval"]["votes"]] == [("ada", True)]

    # a second vote of the same person is refused, in words, and the card stays open
    approval.get_by_role("button", name="Approve").click()
    expect(approval.locator("[data-error]")).to_have_text(
        "Your vote on this question is already recorded; each person votes once."
    )
    expect(approval.get_by_role("button", name="Approve")).to_be_enabled()
    expect(approval).not_to_have_class("closed-card")
    screenshot(page, "votes.png")

    # the second vote of finance, cast elsewhere, decides: the card goes, the run resumes
    decided = vote(ops, people, iid, "carl")
    assert decided["status"] == "resolved", decided
    expect(approval).to_have_count(0)
    notice = page.locator(f'#closed-notices li[data-interrupt-id="{iid}"]')
    expect(notice).to_contain_text("Approved — answered by carl@example.com")
    wait_status(ops, run["run_id"], "succeeded")

    # the run's page keeps the decision with the votes that made it
    page.goto(f"/#/runs/{run['run_id']}")
    item = page.locator(f'#run-interrupts li[data-interrupt-id="{iid}"]')
    expect(item.locator("[data-approval-summary]")).to_have_text(
        "2 of 2 approvals · group:finance · decided"
    )
    expect(item.locator("[data-vote]")).to_have_count(2)
    expect(item.locator("[data-vote]").nth(1)).to_contain_text("carl@example.com approved")


def test_a_chain_shows_its_step_and_a_vote_cast_elsewhere_arrives_live(
    tab_as: Callable[[str], Tab], ops: httpx.Client, people: OidcProvider
) -> None:
    run = start(ops, "chained", {})
    question = next_interrupt(ops, run["run_id"])
    iid = question["id"]
    legal, cfo = question["approval"]["chain"]
    page = tab_as("cfo").page
    page.goto(f"/#/runs/{run['run_id']}")
    pending = page.locator(f'#run-pending li[data-interrupt-id="{iid}"]')
    expect(pending.locator("[data-approval-summary]")).to_have_text(
        f"Step 1 of 2 · waiting for {legal}"
    )
    page.goto("/")
    expect(page.locator("#live")).to_have_text("Live")
    approval = asked(page, iid)
    summary = approval.locator("[data-approval-summary]")
    expect(summary).to_have_text(f"Step 1 of 2 · waiting for {legal}")
    # the CFO is the second step: not yet
    approval.get_by_role("button", name="Approve").click()
    expect(approval.locator("[data-error]")).to_have_text(
        f"This chain of approvals waits for {legal}; it is not your turn yet."
    )
    expect(approval).not_to_have_class("closed-card")

    # legal approves elsewhere: interrupt.voted brings the vote to the open card
    assert vote(ops, people, iid, "lena")["status"] == "pending"
    expect(summary).to_have_text(f"Step 2 of 2 · waiting for {cfo}")
    expect(approval.locator("[data-vote]")).to_have_count(1)
    expect(approval.locator("[data-vote]")).to_contain_text("lena@example.com approved")

    approval.get_by_role("button", name="Approve").click()
    expect(approval).to_have_count(0)
    done = wait_status(ops, run["run_id"], "succeeded")
    assert done["attempts"] == 2, done
    assert read_interrupt(ops, iid)["approval"]["state"] == "decided"


def test_an_answer_held_for_its_window_is_undone_from_its_card(
    tab: Tab, client: httpx.Client
) -> None:
    run = start(client, "naming", HI)
    question = next_interrupt(client, run["run_id"])
    iid = question["id"]
    assert question["undo"] == {"undo_s": 30, "held_until": None}
    page = tab.page
    page.goto("/")
    approval = asked(page, iid)
    expect(approval).to_contain_text("undo within 30 s")
    approval.get_by_role("button", name="Approve").click()
    # the broker answered 200 "accepted": the card counts down, with Undo
    held = approval.locator("[data-undo]")
    expect(held).to_have_text(re.compile(r"^Approved — resuming in \d+ s · Undo$"))
    undo = held.get_by_role("button", name="Undo")
    expect(undo).to_be_focused()
    expect(approval.locator("form.answer")).to_be_hidden()
    got = read_interrupt(client, iid)
    assert got["status"] == "accepted" and got["resolution"]["value"] is True, got
    screenshot(page, "undo.png")

    undo.click()
    expect(held).to_have_count(0)
    expect(approval.get_by_role("button", name="Approve")).to_be_enabled()
    expect(approval.get_by_role("button", name="Approve")).to_be_focused()
    got = read_interrupt(client, iid)
    assert got["status"] == "pending" and got["resolution"] is None, got
    assert got["undo"] == {"undo_s": 30, "held_until": None}

    # on the run's page too: a rejection, held, then taken back
    page.goto(f"/#/runs/{run['run_id']}")
    mine = page.locator(f'#run-pending li[data-interrupt-id="{iid}"]')
    mine.get_by_role("button", name="Reject").click()
    held = mine.locator("[data-undo]")
    expect(held).to_have_text(re.compile(r"^Rejected — resuming in \d+ s · Undo$"))
    # interrupt.accepted reached the page, and the held card stayed
    expect(page.locator("#run-timeline")).to_contain_text("interrupt.accepted")
    held.get_by_role("button", name="Undo").click()
    expect(held).to_have_count(0)
    expect(mine.get_by_role("button", name="Reject")).to_be_enabled()
    expect(page.locator("#run-timeline")).to_contain_text("interrupt.withdrawn")
    assert read_interrupt(client, iid)["status"] == "pending"
    client.post(f"/runs/{run['run_id']}/cancel")


def test_an_answer_held_survives_a_reload_with_its_undo(tab: Tab, client: httpx.Client) -> None:
    run = start(client, "naming", HI)
    iid = next_interrupt(client, run["run_id"])["id"]
    page = tab.page
    page.goto("/")
    approval = asked(page, iid)
    approval.get_by_role("button", name="Approve").click()
    expect(approval.locator("[data-undo]")).to_have_text(HELD)

    # the inbox, reloaded: the answer this tab gave is still held, with its Undo
    page.reload()
    approval = asked(page, iid)
    held = approval.locator("[data-undo]")
    expect(held).to_have_text(HELD)
    expect(approval.locator("form.answer")).to_be_hidden()
    assert read_interrupt(client, iid)["status"] == "accepted"
    # and on the run's page, reloaded
    page.goto(f"/#/runs/{run['run_id']}")
    page.reload()
    mine = page.locator(f'#run-pending li[data-interrupt-id="{iid}"]')
    held = mine.locator("[data-undo]")
    expect(held).to_have_text(HELD)
    held.get_by_role("button", name="Undo").click()
    expect(held).to_have_count(0)
    expect(mine.get_by_role("button", name="Approve")).to_be_enabled()
    assert read_interrupt(client, iid)["status"] == "pending"
    assert page.evaluate("sessionStorage.getItem('broker.held')") is None  # forgotten

    # withdrawn, it is forgotten: a reload shows the question, to answer again
    page.goto("/")
    page.reload()
    approval = asked(page, iid)
    expect(approval.get_by_role("button", name="Approve")).to_be_enabled()
    expect(approval.locator("[data-undo]")).to_have_count(0)
    client.post(f"/runs/{run['run_id']}/cancel")


@pytest.mark.parametrize("live", ["websocket", "polling"])
def test_a_short_window_counts_down_to_resuming_and_the_run_goes_on(
    tab: Tab, client: httpx.Client, live: str
) -> None:
    run = start(client, "counter", {})
    question = next_interrupt(client, run["run_id"])
    page = tab.page
    if live == "polling":  # the held card learns of the resume from GET /interrupts/{id}
        refuse_websocket(page)
    page.goto("/")
    approval = asked(page, question["id"])
    expect(approval).to_contain_text("undo within 2 s")
    record_texts(page, "[data-undo]")
    approval.get_by_role("button", name="Approve").click()
    # the countdown ends in "resuming", without Undo, then the card goes with the run
    page.wait_for_function("() => window.seenTexts.has('Approved — resuming')")
    texts = page.evaluate("[...window.seenTexts]")
    assert any(HELD.match(t) for t in texts), texts
    expect(approval).to_have_count(0)
    notice = page.locator(f'#closed-notices li[data-interrupt-id="{question["id"]}"]')
    expect(notice).to_contain_text("Approved — answered by")
    wait_status(client, run["run_id"], "succeeded")
    assert read_interrupt(client, question["id"])["status"] == "resolved"


def test_an_undo_too_late_is_put_in_words(tab: Tab, client: httpx.Client) -> None:
    run = start(client, "counter", {})
    question = next_interrupt(client, run["run_id"])
    page = tab.page
    # the page's clock stands still and it hears no event: its Undo outlives the window
    page.clock.set_fixed_time(datetime.now(UTC))
    silence_websocket(page)
    page.goto("/")
    approval = asked(page, question["id"])
    approval.get_by_role("button", name="Approve").click()
    held = approval.locator("[data-undo]")
    expect(held).to_have_text(HELD)
    wait_until(
        lambda: read_interrupt(client, question["id"])["status"] == "resolved",
        "the window to close",
    )
    held.get_by_role("button", name="Undo").click()
    expect(approval.locator("[data-undo-error]")).to_contain_text(
        "Too late to undo: the window closed"
    )
    expect(held).to_have_text("Approved — resuming")
    expect(held.get_by_role("button", name="Undo")).to_have_count(0)
    wait_status(client, run["run_id"], "succeeded")


def test_an_answer_held_elsewhere_leaves_the_inbox_and_comes_back_withdrawn(
    tab: Tab, client: httpx.Client
) -> None:
    run = start(client, "naming", HI)
    iid = next_interrupt(client, run["run_id"])["id"]
    page = tab.page
    page.goto("/")
    approval = asked(page, iid)
    expect(approval).to_have_count(1)
    r = client.post(f"/interrupts/{iid}/resolve", json={"value": False, "resolved_by": "bob"})
    assert r.status_code == 200 and r.json()["status"] == "accepted", r.text
    expect(approval).to_have_count(0)
    notice = page.locator(f'#closed-notices li[data-interrupt-id="{iid}"]')
    expect(notice).to_contain_text("Rejected — answered by bob via the REST API; it resumes once")
    assert client.post(f"/interrupts/{iid}/withdraw").status_code == 200
    expect(approval.get_by_role("button", name="Approve")).to_be_enabled()
    client.post(f"/runs/{run['run_id']}/cancel")
