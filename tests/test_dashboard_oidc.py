"""People sign in to the dashboard at a real OpenID provider (the npm oidc-provider, on
loopback) with the authorization code flow and PKCE, in Debian's Chromium driven by
Playwright, against a real API and worker: the provider's login page, the way back, the
token used as a key is, answers recorded as the person (docs/design.md, "People"), an
expired sign-in, "Assigned to me", signing out, and a key that may not name the answerer."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from broker.core import auth
from tests import principals
from tests.browser import (
    LAPTOP,
    NEEDS_CHROMIUM,
    PHONE,
    Tab,
    asked,
    checked_tab,
    launch,
    screenshot,
)
from tests.flow import next_interrupt, start
from tests.harness import TEST_AGENTS, Broker
from tests.oidc import OidcProvider, available, oidc_provider

pytestmark = [
    pytest.mark.slow,
    NEEDS_CHROMIUM,
    pytest.mark.skipif(not available(), reason="node or tests/node/node_modules is missing"),
]
expect.set_options(timeout=30_000)

AGENTS = f"{TEST_AGENTS},asked_of=tests.dashboard_graphs:asked_of"
HI = {"messages": [{"role": "user", "content": "hi"}]}
KEYS: dict[str, principals.KeySpec] = {
    "admin": (principals.new_key("admin"), [auth.ADMIN], None),
    "desk": (principals.new_key("desk"), [auth.READ, auth.RESOLVE], None),
}


@pytest.fixture(scope="module")
def site(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Broker, OidcProvider]]:
    """A broker whose dashboard signs people in at the provider (its client redirects to
    the dashboard's own page), with an admin key for the test's own calls."""
    workdir = tmp_path_factory.mktemp("signin")
    b = Broker(
        redis_url,
        f"ibt{uuid.uuid4().hex[:10]}",
        workdir,
        BROKER_AGENTS=AGENTS,
        BROKER_AUTH="on",
        BROKER_API_KEYS=principals.keys_json(KEYS),
    )
    with oidc_provider(workdir, redirect_uris=[f"{b.url}/"]) as op:
        b.env.update(op.broker_env())
        with b.serving():
            yield b, op


@pytest.fixture
def admin(site: tuple[Broker, OidcProvider]) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=site[0].url, timeout=30, headers=principals.headers(KEYS, "admin")
    ) as c:
        yield c


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch() as b:
        yield b


@pytest.fixture
def tab(browser: Browser, site: tuple[Broker, OidcProvider]) -> Iterator[Tab]:
    """A tab that, afterwards, must not have thrown, nor asked anything of an origin other
    than the broker's and the provider's."""
    broker, op = site
    with checked_tab(browser, broker.url, also=[op.issuer]) as t:
        yield t


def stored(page: Page, store: str, name: str) -> Any:
    return page.evaluate(f"{store}.getItem({name!r})")


def sign_in(page: Page, broker: Broker, op: OidcProvider, account: str) -> None:
    """From the page's sign-in dialog, through the provider's login form, and back."""
    dialog = page.get_by_role("dialog", name="Sign in")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(re.escape(op.issuer) + r"/interaction/"))
    page.locator("#login").fill(account)
    page.locator("#submit").click()
    # back on the dashboard, with the code and state gone from the address bar
    page.wait_for_url(re.compile(re.escape(broker.url) + r"/(#/inbox)?$"))
    expect(page.locator("#person-name")).to_have_text(op.accounts[account]["email"])
    expect(dialog).to_be_hidden()


def test_a_person_signs_in_and_answers_as_themselves(
    tab: Tab, site: tuple[Broker, OidcProvider], admin: httpx.Client
) -> None:
    broker, op = site
    run = start(admin, "naming", HI)
    question = next_interrupt(admin, run["run_id"])
    page = tab.page
    page.goto("/")
    # a name left in "Answer as" from before is never sent for a person (the broker
    # names them from the token; a name would need the on-behalf scope)
    page.evaluate("localStorage.setItem('broker.answerer', 'mallory')")
    expect(page.get_by_role("button", name="Use an API key instead")).to_be_visible()
    sign_in(page, broker, op, "ada")
    assert "code=" not in page.url and "state=" not in page.url
    token = stored(page, "sessionStorage", "broker.accessToken")
    assert token and token.count(".") == 2
    assert stored(page, "localStorage", "broker.accessToken") is None
    assert "mallory" not in token

    expect(page.locator("#live")).to_have_text("Live")
    expect(page.get_by_label("Answer as")).to_be_hidden()
    approval = asked(page, question["id"])
    expect(approval).to_contain_text("please approve")
    screenshot(page, "signed-in.png")
    approval.get_by_label("Reason or comment (optional)").fill("checked the numbers")
    approval.get_by_role("button", name="Approve").click()
    expect(approval).to_have_count(0)
    notice = page.locator(f'#closed-notices li[data-interrupt-id="{question["id"]}"]')
    expect(notice).to_contain_text("Approved — answered by ada@example.com")

    got = admin.get(f"/interrupts/{question['id']}").json()["resolution"]
    assert got["person"]["sub"] == "ada"
    assert got["person"]["email"] == "ada@example.com"
    assert got["person"]["iss"] == op.issuer
    assert got["resolved_by"] is None and got["key_id"] is None
    assert got["comment"] == "checked the numbers"

    # the run's page follows the run over SSE with the same token
    page.goto(f"/#/runs/{run['run_id']}")
    expect(page.locator("#run-interrupts")).to_contain_text("answered by ada@example.com")
    expect(page.locator("#run-timeline")).to_contain_text("interrupt.resolved")

    page.get_by_role("button", name="Sign out").click()
    dialog = page.get_by_role("dialog", name="Sign in")
    expect(dialog).to_be_visible()
    expect(dialog.locator("[data-error]")).to_have_text("You signed out.")
    assert stored(page, "sessionStorage", "broker.accessToken") is None


def test_an_expired_sign_in_goes_back_to_signed_out(
    tab: Tab, site: tuple[Broker, OidcProvider], admin: httpx.Client
) -> None:
    op = site[1]
    page = tab.page
    page.goto("/")
    dialog = page.get_by_role("dialog", name="Sign in")
    expect(dialog).to_be_visible()
    # a token the provider's own key signed, expired a minute ago (past the leeway)
    expired = op.mint(sub="ada", exp=int(time.time()) - 120, iat=int(time.time()) - 900)
    page.evaluate(f"sessionStorage.setItem('broker.accessToken', {expired!r})")
    page.reload()
    expect(dialog).to_be_visible()
    expect(dialog.locator("[data-error]")).to_contain_text("Your sign-in has ended")
    expect(page.locator("#person")).to_be_hidden()
    assert stored(page, "sessionStorage", "broker.accessToken") is None

    # an API key still works, from the same dialog
    dialog.get_by_role("button", name="Use an API key instead").click()
    keys = page.get_by_role("dialog", name="API key")
    keys.get_by_label("Key").fill(KEYS["admin"][0])
    keys.get_by_role("button", name="Use this key").click()
    expect(keys).to_be_hidden()
    expect(page.locator("#live")).to_have_text("Live")
    expect(page.get_by_label("Answer as")).to_be_visible()
    expect(page.locator("#inbox-tabs")).to_be_hidden()


def test_assigned_to_me_lists_exactly_the_persons_questions(
    tab: Tab, site: tuple[Broker, OidcProvider], admin: httpx.Client
) -> None:
    broker, op = site
    asks = {
        "ada": ["user:ada@example.com"],
        "finance": ["group:finance"],
        "bob": ["user:bob@example.com"],
        "anyone": [],
    }
    questions: dict[str, dict[str, Any]] = {}
    for name, assignees in asks.items():
        run = start(admin, "asked_of", {"assignees": assignees, "content": f"for {name}"})
        questions[name] = next_interrupt(admin, run["run_id"])
    page = tab.page
    page.goto("/")
    sign_in(page, broker, op, "ada")
    for q in questions.values():
        expect(asked(page, q["id"])).to_have_count(1)
    expect(asked(page, questions["bob"]["id"]).locator("[data-people]")).to_have_text(
        "Assigned to bob@example.com"
    )
    expect(asked(page, questions["finance"]["id"]).locator("[data-people]")).to_have_text(
        "Assigned to finance (group)"
    )
    expect(asked(page, questions["anyone"]["id"]).locator("[data-people]")).to_have_count(0)

    tabs = page.locator("#inbox-tabs")
    tabs.get_by_role("button", name=re.compile("^Assigned to me")).click()
    shown = page.locator("#inbox-list li.interrupt")
    expect(shown).to_have_count(2)
    # the header with who is signed in, and the tabs, fit a phone's width
    page.set_viewport_size(PHONE)
    screenshot(page, "assigned-phone.png", full_page=True)
    width = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    assert page.evaluate(width) <= 0
    page.set_viewport_size(LAPTOP)
    ids = {shown.nth(i).get_attribute("data-interrupt-id") for i in range(2)}
    assert ids == {questions["ada"]["id"], questions["finance"]["id"]}
    expect(page.locator("#mine-count")).to_have_text("2")

    # a question Ada may not answer is refused by the broker, and the page says why
    tabs.get_by_role("button", name="All pending").click()
    theirs = asked(page, questions["bob"]["id"])
    theirs.get_by_role("button", name="Approve").click()
    expect(theirs.locator("[data-error]")).to_contain_text(
        "This question is assigned to bob@example.com; you may not answer it."
    )
    assert admin.get(f"/interrupts/{questions['bob']['id']}").json()["status"] == "pending"
    for name in ("ada", "finance"):
        asked(page, questions[name]["id"]).get_by_role("button", name="Approve").click()
        expect(asked(page, questions[name]["id"])).to_have_count(0)
        got = admin.get(f"/interrupts/{questions[name]['id']}").json()["resolution"]
        assert got["person"]["sub"] == "ada"
    tabs.get_by_role("button", name=re.compile("^Assigned to me")).click()
    expect(page.locator("#inbox-list li.interrupt")).to_have_count(0)
    expect(page.locator("#inbox-summary")).to_contain_text("none assigned to you")

    # given to Ada while her page is open: the card and her tab follow at once
    bob_id = questions["bob"]["id"]
    r = admin.post(
        f"/interrupts/{bob_id}/assign",
        json={"assignees": ["user:ada@example.com"], "watchers": ["user:bob@example.com"]},
    )
    assert r.status_code == 200, r.text
    expect(page.locator("#inbox-list li.interrupt")).to_have_count(1)
    people = asked(page, bob_id).locator("[data-people]")
    expect(people).to_contain_text("Assigned to ada@example.com")
    expect(people).to_contain_text("Watched by bob@example.com")
    expect(page.locator("#mine-count")).to_have_text("1")
    expect(asked(page, bob_id).locator("[data-error]")).to_have_text("")
    asked(page, bob_id).get_by_role("button", name="Approve").click()
    expect(asked(page, bob_id)).to_have_count(0)
    assert admin.get(f"/interrupts/{bob_id}").json()["resolution"]["person"]["sub"] == "ada"


def test_the_page_may_reach_the_provider_and_nothing_else(
    site: tuple[Broker, OidcProvider], admin: httpx.Client
) -> None:
    broker, op = site
    config = httpx.get(f"{broker.url}/auth/config", timeout=10).json()["oidc"]
    assert config["issuer"] == op.issuer and config["client_id"] == op.client_id
    policy = httpx.get(f"{broker.url}/", timeout=10).headers["content-security-policy"]
    # discovery and the token exchange are the page's only requests off its origin
    assert f"connect-src 'self' {op.issuer};" in policy
    assert "form-action 'self'" in policy and "default-src 'self'" in policy
    script = httpx.get(f"{broker.url}/static/js/signin.js", timeout=10).headers
    assert "connect-src 'self';" in script["content-security-policy"]


def test_a_key_without_on_behalf_is_told_to_leave_answer_as_empty(
    tab: Tab, admin: httpx.Client
) -> None:
    run = start(admin, "naming", HI)
    question = next_interrupt(admin, run["run_id"])
    page = tab.page
    page.goto("/")
    page.get_by_role("dialog", name="Sign in").get_by_role(
        "button", name="Use an API key instead"
    ).click()
    keys = page.get_by_role("dialog", name="API key")
    keys.get_by_label("Key").fill(KEYS["desk"][0])
    keys.get_by_role("button", name="Use this key").click()
    expect(keys).to_be_hidden()
    page.get_by_label("Answer as").fill("grace")
    page.get_by_label("Answer as").press("Tab")
    approval = asked(page, question["id"])
    approval.get_by_role("button", name="Approve").click()
    expect(approval.locator("[data-error]")).to_contain_text(
        "this API key may not answer on someone's behalf"
    )
    assert admin.get(f"/interrupts/{question['id']}").json()["status"] == "pending"

    # without a name the key answers as itself
    page.get_by_label("Answer as").fill("")
    page.get_by_label("Answer as").press("Tab")
    approval.get_by_role("button", name="Approve").click()
    expect(approval).to_have_count(0)
    got = admin.get(f"/interrupts/{question['id']}").json()["resolution"]
    assert got["key_id"] == "desk" and got["resolved_by"] is None and got["person"] is None
