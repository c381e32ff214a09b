"""One-click action links: no API key needed, GET changes nothing, POST answers once;
used, expired, tampered and superseded links each get a clear page and change nothing.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from broker.core import auth, links, signing
from broker.core.codec import now_ms
from broker.core.keys import Keys
from broker.core.records import InterruptRecord
from broker.core.settings import Settings
from tests import state
from tests.flow import next_interrupt, start, wait_status
from tests.harness import Broker, wait_until
from tests.receiver import Receiver, running

pytestmark = pytest.mark.slow

LINK_SECRET = signing.new_secret()
ADMIN_KEY = "k-admin-" + uuid.uuid4().hex
HOOK_SECRET = signing.new_secret()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with running() as r:
        yield r


@pytest.fixture(scope="module")
def linked(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory, receiver: Receiver
) -> Iterator[Broker]:
    p = f"ibt{uuid.uuid4().hex[:10]}"
    keys = [{"id": "ops", "key_sha256": auth.digest(ADMIN_KEY), "scopes": ["admin"]}]
    hooks = [
        {
            "id": "mail",
            "url": f"{receiver.url}/ok/mail",
            "secret": HOOK_SECRET,
            "events": ["interrupt.created"],
            "agents": ["counter"],
        }
    ]
    b = Broker(
        redis_url,
        p,
        tmp_path_factory.mktemp("links"),
        BROKER_AUTH="on",
        BROKER_API_KEYS=json.dumps(keys),
        BROKER_LINK_SECRET=LINK_SECRET,
        BROKER_WEBHOOKS=json.dumps(hooks),
        BROKER_WEBHOOK_ALLOW_PRIVATE="1",
    )
    b.env["BROKER_PUBLIC_URL"] = b.url
    with b.serving():
        yield b


@pytest.fixture
def admin(linked: Broker) -> Iterator[httpx.Client]:
    auth_header = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=linked.url, timeout=30, headers=auth_header) as c:
        yield c


@pytest.fixture
def browser(linked: Broker) -> Iterator[httpx.Client]:
    """A client with no API key, like a mail reader following a link."""
    with httpx.Client(timeout=30) as c:
        yield c


def _record(redis_url: str, broker: Broker, interrupt_id: str) -> InterruptRecord:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        h = r.hgetall(Keys(broker.env["BROKER_KEY_PREFIX"]).interrupt(interrupt_id))
        return InterruptRecord.from_hash(dict(h))
    finally:
        r.close()


def mint(
    redis_url: str, broker: Broker, interrupt_id: str, now: int | None = None
) -> dict[str, str]:
    """Fresh links for an interrupt, signed with the broker's secret: choice -> URL."""
    settings = Settings(link_secret=LINK_SECRET, public_url=broker.url)
    minted = links.mint(settings, _record(redis_url, broker, interrupt_id), now=now)
    return {link["choice"]: link["url"] for link in minted}


def snapshot(redis_url: str, broker: Broker, *, audit: bool) -> dict[Any, Any]:
    """Every key under the broker's prefix with its value (tests/state.py)."""
    return state.snapshot(redis_url, broker.env["BROKER_KEY_PREFIX"], audit=audit)


def post_link(browser: httpx.Client, url: str, **form: str) -> httpx.Response:
    token = url.rsplit("/", 1)[1]
    return browser.post(url, data={"token": token, **form})


def waiting(admin: httpx.Client, agent: str, text: str | None = None) -> tuple[str, str]:
    data = {"messages": [{"role": "user", "content": text}]} if text else {}
    run = start(admin, agent, data)
    return run["run_id"], next_interrupt(admin, run["run_id"])["id"]


def test_approve_from_a_webhooks_link_with_no_api_key(
    admin: httpx.Client,
    browser: httpx.Client,
    linked: Broker,
    redis_url: str,
    receiver: Receiver,
) -> None:
    run_id, iid = waiting(admin, "counter")

    def mail() -> dict[str, Any] | None:
        for got in receiver.at("/ok/mail"):
            payload = json.loads(got.body)
            if payload["data"]["interrupt_id"] == iid:
                return payload
        return None

    payload = wait_until(mail, "the webhook with the links")
    approve = next(link["url"] for link in payload["data"]["links"] if link["choice"] == "approve")
    assert approve.startswith(f"{linked.url}/links/")
    assert browser.get(f"{linked.url}/interrupts/{iid}").status_code == 401  # no key

    # a mail scanner following the link changes nothing, not even the audit log
    before = snapshot(redis_url, linked, audit=True)
    page = browser.get(approve)
    assert page.status_code == 200
    assert "Approve" in page.text and "<form" in page.text and 'method="post"' in page.text
    assert snapshot(redis_url, linked, audit=True) == before

    done = post_link(browser, approve)
    assert done.status_code == 200, done.text
    assert "You chose: Approve" in done.text
    answered = admin.get(f"/interrupts/{iid}").json()
    assert answered["status"] == "resolved"
    resolution = answered["resolution"]
    assert (resolution["value"], resolution["channel"]) == (True, "link")
    assert (resolution["resolved_by"], resolution["key_id"]) == ("link:approve", None)
    assert wait_status(admin, run_id, "succeeded")["output"]["values"]["answer"] is True
    trail = admin.get(f"/interrupts/{iid}/audit").json()["items"]
    assert [(e["channel"], e["actor"], e["outcome"]) for e in trail] == [
        ("link", "link:approve", "accepted")
    ]


def _tamper_signature(url: str) -> str:
    head, sig = url.rsplit(".", 1)
    return f"{head}.{'A' if sig[0] != 'A' else 'B'}{sig[1:]}"


def _tamper_choice(url: str) -> str:
    base, token = url.rsplit("/", 1)
    version, payload, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["c"] = "approve" if claims["c"] == "reject" else "reject"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{base}/{version}.{forged}.{sig}"


MISUSE = {
    # case: (GET status, POST status, words on the page)
    "used": (410, 410, "already used"),
    "expired": (410, 410, "expired"),
    "tampered signature": (404, 404, "not valid"),
    "tampered choice": (404, 404, "not valid"),
    "superseded": (409, 409, "already closed"),
}


@pytest.mark.parametrize("case", list(MISUSE))
def test_a_misused_link_gets_a_clear_page_and_changes_nothing(
    admin: httpx.Client, browser: httpx.Client, linked: Broker, redis_url: str, case: str
) -> None:
    run_id, iid = waiting(admin, "counter")
    urls = mint(redis_url, linked, iid)
    url = urls["reject"]
    if case == "used":
        assert post_link(browser, urls["reject"]).status_code == 200
    elif case == "expired":
        url = mint(redis_url, linked, iid, now=now_ms() - 8 * 24 * 3600 * 1000)["reject"]
    elif case == "tampered signature":
        url = _tamper_signature(url)
    elif case == "tampered choice":
        url = _tamper_choice(url)
    elif case == "superseded":
        assert admin.post(f"/interrupts/{iid}/resolve", json={"value": "ok"}).status_code == 200
    if case in ("used", "superseded"):
        wait_status(admin, run_id, "succeeded")  # so nothing else moves while we look
    get_status, post_status, words = MISUSE[case]
    status = admin.get(f"/interrupts/{iid}").json()["status"]

    before = snapshot(redis_url, linked, audit=True)
    page = browser.get(url)
    assert (page.status_code, words in page.text) == (get_status, True), page.text
    assert "<form" not in page.text
    assert snapshot(redis_url, linked, audit=True) == before

    before = snapshot(redis_url, linked, audit=False)
    page = post_link(browser, url)
    assert (page.status_code, words in page.text) == (post_status, True), page.text
    assert snapshot(redis_url, linked, audit=False) == before
    assert admin.get(f"/interrupts/{iid}").json()["status"] == status
    if case == "expired":
        # the deadline of the link passed, not the interrupt's: it still waits
        assert status == "pending"
        trail = admin.get(f"/interrupts/{iid}/audit").json()["items"]
        assert trail[-1]["outcome"] == "link_expired"
    if status == "pending":
        admin.post(f"/runs/{run_id}/cancel")


def test_one_link_per_slot_for_the_scheduling_agent(
    admin: httpx.Client, browser: httpx.Client, linked: Broker, redis_url: str
) -> None:
    run_id, iid = waiting(admin, "scheduling", "Book a call with Alice about the Q3 roadmap")
    urls = mint(redis_url, linked, iid)
    assert list(urls) == ["slot:0", "slot:1", "slot:2", "slot:3", "cancel"]
    slot = admin.get(f"/interrupts/{iid}").json()["value"]["slots"][2]
    page = browser.get(urls["slot:2"])
    assert slot["label"] in page.text
    assert post_link(browser, urls["slot:2"]).status_code == 200
    done = wait_status(admin, run_id, "succeeded", "failed")
    assert f"Meeting scheduled for {slot['label']}" in done["output"]["final_message"]
    # the other slots' links are now superseded
    assert post_link(browser, urls["slot:1"]).status_code == 409


def test_a_form_link_for_a_free_answer(
    admin: httpx.Client, browser: httpx.Client, linked: Broker, redis_url: str
) -> None:
    run_id, approval = waiting(admin, "naming", "hello")
    assert post_link(browser, mint(redis_url, linked, approval)["approve"]).status_code == 200
    ask = next_interrupt(admin, run_id, after=approval)
    urls = mint(redis_url, linked, ask["id"])
    assert list(urls) == ["answer"]
    page = browser.get(urls["answer"])
    assert "<textarea" in page.text
    assert post_link(browser, urls["answer"], answer="Ada").status_code == 200
    done = wait_status(admin, run_id, "succeeded", "failed")
    assert done["output"]["values"]["agent_name"] == "Ada"


def test_tool_approval_from_a_link(
    admin: httpx.Client, browser: httpx.Client, linked: Broker, redis_url: str
) -> None:
    run_id, iid = waiting(admin, "tool_approval", "Send an email to bob@example.com about it")
    urls = mint(redis_url, linked, iid)
    assert list(urls) == ["approve", "reject"]
    assert post_link(browser, urls["approve"]).status_code == 200
    done = wait_status(admin, run_id, "succeeded", "failed")
    tools = [m for m in done["output"]["messages"] if m["type"] == "tool"]
    assert "Email sent to bob@example.com" in tools[0]["content"]


def test_a_reject_link_with_a_reason(
    admin: httpx.Client, browser: httpx.Client, linked: Broker, redis_url: str
) -> None:
    run_id, iid = waiting(admin, "tool_approval", "Send an email to bob@example.com about it")
    url = mint(redis_url, linked, iid)["reject"]
    page = browser.get(url)
    assert '<textarea id="comment" name="comment" maxlength="2000">' in page.text
    assert "Reason (optional)" in page.text
    bad = post_link(browser, url, comment="bell\x07")
    assert bad.status_code == 422
    assert admin.get(f"/interrupts/{iid}").json()["status"] == "pending"
    done_page = post_link(browser, url, comment="Bob is <away> & out")
    assert done_page.status_code == 200
    assert "Bob is &lt;away&gt; &amp; out" in done_page.text  # shown, escaped
    resolution = admin.get(f"/interrupts/{iid}").json()["resolution"]
    assert resolution["comment"] == "Bob is <away> & out"
    assert resolution["value"] == {
        "decisions": [{"type": "reject", "message": "Bob is <away> & out"}]
    }
    trail = admin.get(f"/interrupts/{iid}/audit").json()["items"]
    assert [(e["outcome"], e.get("comment")) for e in trail] == [
        ("invalid_request", None),  # a refused comment is not kept
        ("accepted", "Bob is <away> & out"),
    ]
    done = wait_status(admin, run_id, "succeeded", "failed")
    tools = [m for m in done["output"]["messages"] if m["type"] == "tool"]
    assert "with reason: Bob is <away> & out" in tools[0]["content"]


def test_pages_are_self_contained_and_cannot_be_framed(
    admin: httpx.Client, browser: httpx.Client, linked: Broker, redis_url: str
) -> None:
    run_id, iid = waiting(admin, "counter")
    page = browser.get(mint(redis_url, linked, iid)["approve"])
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    assert "<script" not in page.text
    assert not re.search(r"(src|href|action)=", page.text)
    admin.post(f"/runs/{run_id}/cancel")


def test_the_link_secret_must_be_real_outside_dev() -> None:
    with pytest.raises(links.LinkConfigError, match="BROKER_LINK_SECRET"):
        links.secret_key(Settings(link_secret="please-change-me-please-change-me"))
    with pytest.raises(links.LinkConfigError, match="at least"):
        links.secret_key(Settings(link_secret="short"))
    assert links.secret_key(Settings()) is None  # links off
    assert links.secret_key(Settings(dev=True)) is not None  # dev has a built-in one
    key = links.secret_key(Settings(link_secret=LINK_SECRET))
    assert key is not None
    claims = links.Claims("i", "approve", now_ms() + 60_000, "n")
    assert links.verify(key, links.sign(key, claims)) == claims
    with pytest.raises(links.LinkInvalid):
        links.verify(b"another key of some length........", links.sign(key, claims))


def test_a_page_answers_only_the_question_it_showed(
    admin: httpx.Client, browser: httpx.Client, linked: Broker, redis_url: str
) -> None:
    # docs/design.md, "Answers bound to what was shown"
    run_id, iid = waiting(admin, "counter")
    url = mint(redis_url, linked, iid)["approve"]
    fp = admin.get(f"/interrupts/{iid}").json()["fingerprint"]
    page = browser.get(url)
    assert f'name="fingerprint" value="{fp}"' in page.text

    before = snapshot(redis_url, linked, audit=False)
    stale = post_link(browser, url, fingerprint="shown-before-it-changed")
    assert stale.status_code == 412, stale.text
    assert "This question changed since you opened it" in stale.text
    assert snapshot(redis_url, linked, audit=False) == before
    assert admin.get(f"/interrupts/{iid}").json()["status"] == "pending"
    trail = admin.get(f"/interrupts/{iid}/audit").json()["items"]
    assert trail[-1]["outcome"] == "fingerprint_mismatch"

    # the link itself is not spent: the page of the question as it is answers
    assert post_link(browser, url, fingerprint=fp).status_code == 200
    wait_status(admin, run_id, "succeeded")
