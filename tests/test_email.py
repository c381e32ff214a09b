"""Email as an answer channel: a new interrupt that a route matches is emailed, with one
action link per choice, to the route's addresses or its assignees' emails, over a real
SMTP server (aiosmtpd); a refusal is retried and delivered once; an unrouted interrupt
is emailed to nobody; bad email settings are refused at start.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from broker.core import config, mail, signing
from broker.core.records import InterruptRecord, InterruptStatus
from broker.core.settings import Settings
from tests.flow import next_interrupt, start, wait_status
from tests.harness import Broker, free_port, wait_until

LINK_SECRET = signing.new_secret()
ROUTES = [
    {"agent": "counter", "type": "approval", "to": ["ops@example.com", "Audit@Example.com"]},
    {"agent": "scheduling", "assignees": True},
    {"agent": "naming", "type": "approval", "to": ["flaky@example.com"]},
    {"agent": "typed", "to": ["busy@example.com", "nobody@example.com"]},
]
MAX_ATTEMPTS = 3
ASSIGNMENT = [
    {"agent": "scheduling", "assignees": ["user:Alice@Example.com", "group:legal", "user:bob-7"]}
]


class Inbox:
    """An SMTP handler keeping each message it accepts; it answers 451 once to each
    recipient in ``refuse_once``, and always to those in ``refuse``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.got: list[tuple[list[str], EmailMessage]] = []
        self.refuse_once = {"flaky@example.com"}
        self.refuse = {
            "busy@example.com": "451 4.3.0 Mailbox busy",
            "nobody@example.com": "550 5.1.1 No such user",
        }
        self.refused: list[list[str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        rcpts = list(envelope.rcpt_tos)
        with self.lock:
            if self.refuse_once & set(rcpts):
                self.refuse_once -= set(rcpts)
                self.refused.append(rcpts)
                return "451 4.3.0 Try again later"
            if rcpts[0] in self.refuse:
                self.refused.append(rcpts)
                return self.refuse[rcpts[0]]
            msg = message_from_bytes(envelope.content, policy=policy.default)
            assert isinstance(msg, EmailMessage)
            self.got.append((rcpts, msg))
        return "250 OK"

    def about(self, interrupt_id: str) -> list[tuple[list[str], EmailMessage]]:
        with self.lock:
            return [(r, m) for r, m in self.got if m["X-Interrupt-Id"] == interrupt_id]


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def mailing(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory, smtp: tuple[Inbox, int]
) -> Iterator[Broker]:
    b = Broker(
        redis_url,
        f"ibt{uuid.uuid4().hex[:10]}",
        tmp_path_factory.mktemp("email"),
        BROKER_LINK_SECRET=LINK_SECRET,
        BROKER_SMTP_HOST="127.0.0.1",
        BROKER_SMTP_PORT=str(smtp[1]),
        BROKER_SMTP_TLS="off",
        BROKER_EMAIL_FROM="broker@example.com",
        BROKER_EMAIL_ROUTES=json.dumps(ROUTES),
        BROKER_EMAIL_BACKOFF_S="0.2",
        BROKER_EMAIL_MAX_ATTEMPTS=str(MAX_ATTEMPTS),
        BROKER_ASSIGNMENT=json.dumps(ASSIGNMENT),
    )
    b.env["BROKER_PUBLIC_URL"] = b.url
    with b.serving():
        yield b


@pytest.fixture
def api(mailing: Broker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mailing.url, timeout=30) as c:
        yield c


def waiting(api: httpx.Client, agent: str, text: str | None = None) -> tuple[str, str]:
    data = {"messages": [{"role": "user", "content": text}]} if text else {}
    run = start(api, agent, data)
    return run["run_id"], next_interrupt(api, run["run_id"])["id"]


def arrived(inbox: Inbox, iid: str, count: int) -> list[tuple[list[str], EmailMessage]]:
    return wait_until(lambda: len(inbox.about(iid)) >= count and inbox.about(iid), "the email")


def parts(msg: EmailMessage) -> tuple[str, str]:
    plain, html = msg.get_body(("plain",)), msg.get_body(("html",))
    assert plain is not None and html is not None
    return plain.get_content(), html.get_content()


@pytest.mark.slow
def test_a_routed_interrupt_is_emailed_and_answered_from_its_link(
    api: httpx.Client, mailing: Broker, smtp: tuple[Inbox, int]
) -> None:
    inbox = smtp[0]
    run_id, iid = waiting(api, "counter")
    got = arrived(inbox, iid, 2)
    assert sorted(r for rcpts, _ in got for r in rcpts) == [
        "audit@example.com",
        "ops@example.com",
    ]
    msg = got[0][1]
    assert msg["Subject"] == "[counter] count me"
    assert msg["From"] == "broker@example.com"
    plain, html = parts(msg)
    assert "count me" in plain and "count me" in html
    urls = re.findall(r"(?:Approve|Reject): (\S+)", plain)
    assert len(urls) == 2 and all(u.startswith(f"{mailing.url}/links/") for u in urls)
    assert [
        u.replace("&amp;", "&") for u in re.findall(r'<a href="([^"]+/links/[^"]+)"', html)
    ] == urls
    assert f"{mailing.url}/#/runs/{run_id}" in plain

    with httpx.Client(timeout=30) as browser:  # a mail reader: no API key, just the link
        approve = urls[0]
        page = browser.get(approve)
        assert page.status_code == 200 and "<form" in page.text
        assert api.get(f"/interrupts/{iid}").json()["status"] == "pending"
        token = approve.rsplit("/", 1)[1]
        done = browser.post(approve, data={"token": token})
        assert done.status_code == 200, done.text
        resolution = api.get(f"/interrupts/{iid}").json()["resolution"]
        assert (resolution["value"], resolution["channel"]) == (True, "link")
        assert wait_status(api, run_id, "succeeded")["output"]["values"]["answer"] is True
        again = browser.post(approve, data={"token": token})
        assert again.status_code == 410 and "already used" in again.text
        # the other recipient's links are spent too: the question is closed
        other = re.findall(r"Reject: (\S+)", parts(got[1][1])[0])[0]
        assert browser.post(other, data={"token": other.rsplit("/", 1)[1]}).status_code == 409


@pytest.mark.slow
def test_assignees_with_an_email_get_it_at_that_address(
    api: httpx.Client, mailing: Broker, smtp: tuple[Inbox, int]
) -> None:
    run_id, iid = waiting(api, "scheduling", "Book a call with Alice about the Q3 roadmap")
    got = arrived(smtp[0], iid, 1)
    assert [rcpts for rcpts, _ in got] == [["alice@example.com"]]  # groups have no address
    assert got[0][1]["To"] == "alice@example.com"
    plain, _ = parts(got[0][1])
    assert len(re.findall(r"/links/", plain)) == 5  # four slots and cancel
    api.post(f"/runs/{run_id}/cancel")


@pytest.mark.slow
def test_an_interrupt_reassigned_is_emailed_to_its_new_assignees(
    api: httpx.Client, mailing: Broker, smtp: tuple[Inbox, int]
) -> None:
    run_id, iid = waiting(api, "scheduling", "Book a call with Alice")
    assert [rcpts for rcpts, _ in arrived(smtp[0], iid, 1)] == [["alice@example.com"]]
    moved = api.post(
        f"/interrupts/{iid}/assign",
        json={"assignees": ["user:Alice@Example.com", "user:carol@example.com"]},
    )
    assert moved.status_code == 200, moved.text
    got = arrived(smtp[0], iid, 2)
    assert [rcpts for rcpts, _ in got] == [["alice@example.com"], ["carol@example.com"]]
    plain, _ = parts(got[1][1])
    link = re.findall(r"http://\S+/links/\S+", plain)[0]
    with httpx.Client(timeout=30) as browser:
        assert browser.post(link, data={"token": link.rsplit("/", 1)[1]}).status_code == 200
    assert api.get(f"/interrupts/{iid}").json()["resolution"]["channel"] == "link"
    wait_status(api, run_id, "succeeded", "cancelled")


@pytest.mark.slow
def test_a_refusal_is_retried_and_delivered_once_and_unrouted_ones_are_not_sent(
    api: httpx.Client, mailing: Broker, smtp: tuple[Inbox, int]
) -> None:
    inbox = smtp[0]
    run_id, iid = waiting(api, "naming", "hello")
    got = arrived(inbox, iid, 1)
    assert [r for r in inbox.refused if r[0] == "flaky@example.com"] == [["flaky@example.com"]]
    assert [rcpts for rcpts, _ in got] == [["flaky@example.com"]]

    # no route matches a tool review: after a later routed interrupt is emailed (the
    # dispatcher reads events in order), nothing was sent about the unrouted one
    unrouted_run, unrouted = waiting(api, "tool_approval", "Send an email to bob@example.com")
    later_run, later = waiting(api, "counter")
    arrived(inbox, later, 2)
    assert inbox.about(unrouted) == []
    assert len(inbox.about(iid)) == 1  # delivered once
    for rid in (run_id, unrouted_run, later_run):
        api.post(f"/runs/{rid}/cancel")


@pytest.mark.slow
def test_a_server_that_keeps_refusing_is_given_up_on(
    api: httpx.Client, mailing: Broker, smtp: tuple[Inbox, int]
) -> None:
    inbox = smtp[0]
    run_id, iid = waiting(api, "typed")
    worker = mailing.workers[0]
    wait_until(
        lambda: f"email about {iid} to busy@example.com: gave up" in worker.output(), "the give-up"
    )
    wait_until(
        lambda: f"email about {iid} to nobody@example.com refused" in worker.output(), "the refusal"
    )
    assert f"gave up after {MAX_ATTEMPTS} attempts" in worker.output()
    # a 4xx is tried the configured number of times, a 5xx once; neither is delivered
    assert [r for r in inbox.refused if r[0] == "busy@example.com"] == [
        ["busy@example.com"]
    ] * MAX_ATTEMPTS
    assert [r for r in inbox.refused if r[0] == "nobody@example.com"] == [["nobody@example.com"]]
    assert inbox.about(iid) == []
    assert api.get(f"/interrupts/{iid}").json()["status"] == "pending"
    api.post(f"/runs/{run_id}/cancel")


def _settings(**extra: Any) -> Settings:
    base: dict[str, Any] = {
        "redis_url": "redis://127.0.0.1:6379/0",
        "smtp_host": "127.0.0.1",
        "email_from": "broker@example.com",
        "email_routes": [{"to": ["ops@example.com"]}],
        "link_secret": LINK_SECRET,
    }
    return Settings(**{**base, **extra})


def test_routes_and_recipients() -> None:
    rules = mail.routes(
        [{"agent": "a", "type": "approval", "to": ["X@Example.com"]}, {"assignees": True}]
    )
    event = {
        "type": "interrupt.created",
        "agent_id": "a",
        "data": {
            "interrupt_id": "i",
            "type": "approval",
            "assignees": ["user:Y@example.com", "group:legal", "user:sub", "user:x@example.com"],
        },
    }
    assert mail.recipients(rules, event) == ["x@example.com", "y@example.com"]
    assert mail.recipients(rules, {**event, "agent_id": "b"}) == ["y@example.com", "x@example.com"]
    assert mail.recipients(rules, {**event, "type": "interrupt.resolved"}) == []
    # reassigned: only the assignees it did not name before, and no fixed "to"
    moved = {
        "type": "interrupt.assigned",
        "agent_id": "a",
        "data": {
            "interrupt_id": "i",
            "type": "approval",
            "previous_assignees": ["user:y@example.com"],
            "assignees": ["user:y@example.com", "user:Z@example.com", "group:managers"],
        },
    }
    assert mail.recipients(rules, moved) == ["z@example.com"]
    assert (
        mail.recipients(
            mail.routes([{"agent": "a", "to": ["o@example.com"]}]), {**event, "agent_id": "b"}
        )
        == []
    )


@pytest.mark.parametrize(
    ("routes", "words"),
    [
        ({"to": ["ops@example.com"], "when": 1}, "unknown fields"),
        ({"agent": 3, "to": ["ops@example.com"]}, "agent must be a string"),
        ({"to": "ops@example.com"}, "to must be a list"),
        ({"to": ["ops@example.com\r\nBcc: x@example.com"]}, "not an email address"),
        ({"assignees": "yes"}, "true or false"),
        ({"agent": "naming"}, "emails nobody"),
    ],
)
def test_bad_routes_are_refused(routes: dict[str, Any], words: str) -> None:
    with pytest.raises(mail.EmailConfigError, match=words):
        mail.routes([routes])


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"smtp_host": None}, "BROKER_SMTP_HOST is not"),
        ({"email_from": None}, "BROKER_EMAIL_FROM"),
        ({"link_secret": None}, "BROKER_LINK_SECRET"),
        ({"smtp_username": "u"}, "go together"),
        ({"smtp_password": "p", "smtp_password_file": "/f"}, "not both"),
        ({"smtp_username": "u", "smtp_password_file": "/nowhere/pw"}, "PASSWORD_FILE"),
    ],
)
def test_unusable_email_settings_are_refused_at_start(extra: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        config.check(_settings(**extra), "worker")


def test_email_is_off_without_a_host_and_on_with_one() -> None:
    assert config.check(_settings(smtp_host=None, email_routes=None), "worker").email == ()
    assert config.check(_settings(), "worker").email == (
        mail.Route(None, None, ("ops@example.com",), False),
    )
    with pytest.raises(ValueError, match="BROKER_EMAIL_ROUTES is not valid JSON"):
        Settings(_env_file=None, email_routes="[{")


def test_the_html_part_escapes_the_question() -> None:
    h = InterruptRecord(
        "i1",
        "lg",
        "r1",
        "t1",
        "agent<b>",
        InterruptStatus.PENDING,
        value={"type": "approval", "content": "<script>alert(1)</script> & more"},
        type="approval",
    )
    link = {"label": "Approve", "url": 'http://h/links/a"b', "expires_at": "soon"}
    msg = mail.compose(_settings(), h, "ops@example.com", [link], "evt_1-0")
    plain, html = parts(msg)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html
    assert 'href="http://h/links/a&quot;b"' in html and "agent&lt;b&gt;" in html
    assert "<script>alert(1)</script> & more" in plain
    assert msg["Subject"] == "[agent<b>] <script>alert(1)</script> & more"
