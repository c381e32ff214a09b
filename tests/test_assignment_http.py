"""Assignment over HTTP, with a real API, a real worker, API keys and people signed in
at a real OpenID provider (tests/oidc.py; docs/design.md, "Assignment"): an interrupt
assigned by its value or by BROKER_ASSIGNMENT takes answers only from those allowed, is
listed with ``assigned_to``, and is reassigned with ``POST /interrupts/{id}/assign``,
which is audited and emits a signed ``interrupt.assigned`` webhook.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from broker.core import assignment, auth, signing
from tests.flow import next_interrupt, start, wait_status
from tests.harness import Broker, wait_until
from tests.oidc import OidcProvider, available
from tests.principals import KeySpec, headers, keys_json, new_key
from tests.receiver import Receiver, running

pytestmark = pytest.mark.skipif(
    not available(), reason="node or tests/node/node_modules is missing"
)

KEYS: dict[str, KeySpec] = {
    "ops": (new_key("ops"), ["admin"], None),
    "svc": (new_key("svc"), [auth.READ, auth.RESOLVE, auth.ON_BEHALF], None),
    "plain": (new_key("plain"), [auth.READ, auth.RESOLVE], None),
    "lead": (new_key("lead"), [auth.READ, auth.ASSIGN], None),
}
SECRET = signing.new_secret()
RULES = [{"agent": "counter", "assignees": ["group:finance"], "watchers": ["user:auditor"]}]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with running() as r:
        yield r


@pytest.fixture(scope="module")
def assigning(
    redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    receiver: Receiver,
    oidc: OidcProvider,
) -> Iterator[Broker]:
    hooks = [
        {
            "id": "assigned",
            "url": f"{receiver.url}/assigned",
            "secret": SECRET,
            "events": ["interrupt.assigned"],
        }
    ]
    b = Broker(
        redis_url,
        f"ibt{uuid.uuid4().hex[:10]}",
        tmp_path_factory.mktemp("assignment"),
        BROKER_AUTH="on",
        BROKER_API_KEYS=keys_json(KEYS),
        BROKER_ASSIGNMENT=json.dumps(RULES),
        BROKER_WEBHOOKS=json.dumps(hooks),
        BROKER_WEBHOOK_ALLOW_PRIVATE="1",
        BROKER_OIDC_GROUP_SCOPES=json.dumps({"ops": [auth.ASSIGN]}),
        **oidc.broker_env(client_id=False),
    )
    with b.serving():
        yield b


@pytest.fixture
def api(assigning: Broker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=assigning.url, timeout=30, headers=headers(KEYS, "ops")) as c:
        yield c


def as_(who: str) -> dict[str, str]:
    return headers(KEYS, who)


def resolve(api: httpx.Client, iid: str, who: str) -> httpx.Response:
    return api.post(f"/interrupts/{iid}/resolve", json={"value": True}, headers=as_(who))


def listed(api: httpx.Client, who: str = "plain", **params: str) -> list[str]:
    r = api.get("/interrupts", params=params, headers=as_(who))
    assert r.status_code == 200, r.text
    return [i["id"] for i in r.json()["items"]]


def test_a_declared_assignment_keeps_others_from_answering(api: httpx.Client) -> None:
    run = start(api, "assigned", {})
    target = next_interrupt(api, run["run_id"])
    assert target["assignees"] == ["group:finance", "user:lead@example.com"]
    assert target["watchers"] == ["user:auditor"]

    refused = resolve(api, target["id"], "plain")
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["code"] == "not_assignee"
    assert "assigned to others" in error["message"]
    assert api.get(f"/interrupts/{target['id']}").json()["status"] == "pending"
    entries = api.get(f"/interrupts/{target['id']}/audit").json()["items"]
    assert [(e["actor"], e["outcome"]) for e in entries] == [("plain", "not_assignee")]

    # operators list what is assigned to a name; a key is nobody, so nothing is its own
    assert target["id"] in listed(api, assigned_to="group:finance")
    assert target["id"] in listed(api, assigned_to="user:LEAD@example.com")
    assert target["id"] not in listed(api, assigned_to="user:auditor")
    assert listed(api, assigned_to="me") == []
    bad = api.get("/interrupts", params={"assigned_to": "finance"}, headers=as_("plain"))
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"

    # a service answering on a person's behalf may
    assert resolve(api, target["id"], "svc").status_code == 200
    wait_status(api, run["run_id"], "succeeded")
    assert target["id"] not in listed(api, assigned_to="group:finance")


def test_a_declaration_naming_nobody_valid_is_answered_only_on_behalf(
    api: httpx.Client, assigning: Broker
) -> None:
    """docs/design.md, "Assignment": ``"assignees": ["finance"]`` (no kind) fails closed."""
    run = start(api, "misassigned", {})
    target = next_interrupt(api, run["run_id"])
    assert target["assignees"] == [assignment.INVALID]
    refused = resolve(api, target["id"], "plain")
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "not_assignee"
    logged = "".join(w.output() for w in assigning.workers)
    assert "declares assignees ['finance'] with no valid name" in logged
    assert f"run {run['run_id']}" in logged
    # an assigner gives it to someone; a service may answer it meanwhile
    r = api.post(
        f"/interrupts/{target['id']}/assign", json={"assignees": ["user:x"]}, headers=as_("lead")
    )
    assert r.status_code == 200, r.text
    assert resolve(api, target["id"], "svc").status_code == 200
    wait_status(api, run["run_id"], "succeeded")


def test_reassignment_moves_who_may_answer_and_is_signed_to_webhooks(
    api: httpx.Client, receiver: Receiver
) -> None:
    run = start(api, "counter", {})
    target = next_interrupt(api, run["run_id"])
    iid = target["id"]
    assert target["assignees"] == ["group:finance"]  # BROKER_ASSIGNMENT
    before = listed(api, assigned_to="user:bob@example.com")
    tag = api.get("/interrupts", params={"assigned_to": "user:bob@example.com"}).headers["ETag"]

    body = {"assignees": ["user:Bob@Example.com"], "comment": "finance is away"}
    assert api.post(f"/interrupts/{iid}/assign", json=body, headers=as_("plain")).status_code == 403
    assert api.post("/interrupts/nope/assign", json=body, headers=as_("lead")).status_code == 404
    for bad in ({"assignees": ["bob"]}, {"assignees": "user:bob"}, {"watchers": []}):
        r = api.post(f"/interrupts/{iid}/assign", json=bad, headers=as_("lead"))
        assert r.status_code == 422, (bad, r.text)
    assert api.get(f"/interrupts/{iid}").json()["assignees"] == ["group:finance"]

    r = api.post(f"/interrupts/{iid}/assign", json=body, headers=as_("lead"))
    assert r.status_code == 200, r.text
    assert r.json()["assignees"] == ["user:bob@example.com"]
    assert r.json()["watchers"] == []
    assert listed(api, assigned_to="user:bob@example.com") == [*before, iid]
    assert iid not in listed(api, assigned_to="group:finance")
    # the list changed, so the tag a poller holds no longer matches
    again = api.get(
        "/interrupts",
        params={"assigned_to": "user:bob@example.com"},
        headers={"If-None-Match": tag},
    )
    assert again.status_code == 200 and again.headers["ETag"] != tag

    entry = api.get(f"/interrupts/{iid}/audit").json()["items"][-1]
    assert entry["outcome"] == "assigned" and entry["actor"] == "lead"
    assert entry["previous_assignees"] == ["group:finance"]
    assert entry["comment"] == "finance is away"

    def assigned() -> list[Any]:
        return [
            r for r in receiver.at("/assigned") if json.loads(r.body)["data"]["interrupt_id"] == iid
        ]

    got = wait_until(assigned, "the interrupt.assigned delivery")
    payload: dict[str, Any] = Webhook(SECRET).verify(got[0].body, got[0].headers)
    assert payload["type"] == "interrupt.assigned"
    data = payload["data"]
    assert data["assignees"] == ["user:bob@example.com"]
    assert data["previous_assignees"] == ["group:finance"]
    assert data["by"] == {"actor": "lead", "key_id": "lead", "person": None}
    assert data["interrupt"]["assignees"] == ["user:bob@example.com"]

    assert resolve(api, iid, "plain").json()["error"]["code"] == "not_assignee"
    assert resolve(api, iid, "svc").status_code == 200
    closed = api.post(f"/interrupts/{iid}/assign", json=body, headers=as_("lead"))
    assert closed.status_code == 409 and closed.json()["error"]["code"] == "already_resolved"


# -- people ---------------------------------------------------------------------------
# the provider's accounts (tests/oidc.py): ada (ada@example.com, group finance), bob
# (bob@example.com, group ops), eve (eve@example.com, no group)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def waiting_on(api: httpx.Client, agent: str) -> str:
    return str(next_interrupt(api, start(api, agent, {})["run_id"])["id"])


def reassigned(api: httpx.Client, iid: str, *assignees: str, watchers: list[str]) -> None:
    body = {"assignees": list(assignees), "watchers": watchers}
    r = api.post(f"/interrupts/{iid}/assign", json=body, headers=as_("lead"))
    assert r.status_code == 200, r.text


def test_assigned_to_me_lists_exactly_what_the_person_may_answer(
    api: httpx.Client, oidc: OidcProvider
) -> None:
    ada, bob, eve = (bearer(oidc.token(sub)) for sub in ("ada", "bob", "eve"))
    via_group = waiting_on(api, "counter")  # BROKER_ASSIGNMENT: group:finance
    by_sub = waiting_on(api, "counter")
    reassigned(api, by_sub, "user:ada", watchers=[])
    others = waiting_on(api, "counter")
    reassigned(api, others, "user:bob@example.com", watchers=["user:ADA@example.com"])
    unassigned = waiting_on(api, "naming")

    mine = api.get("/interrupts", params={"assigned_to": "me", "limit": 1}, headers=ada)
    assert mine.status_code == 200, mine.text
    # paged one at a time, each once, oldest first
    seen: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = api.get(
            "/interrupts", params={"assigned_to": "me", "limit": 1, "cursor": cursor}, headers=ada
        ).json()
        seen += page["items"]
        if not page["next_cursor"]:
            break
        cursor = page["next_cursor"]
    ids = [i["id"] for i in seen]
    assert via_group in ids and by_sub in ids
    assert ids.index(via_group) < ids.index(by_sub)
    assert others not in ids and unassigned not in ids  # a watcher is not an assignee
    # exactly: every pending interrupt with assignees is listed iff ada is among them
    names = {"user:ada", "user:ada@example.com", "group:finance"}
    everything = api.get("/interrupts", params={"limit": 500}).json()["items"]
    assert {i["id"] for i in everything if names & set(i["assignees"])} == set(ids)
    # bob's "me" is bob's: the same query string, another list and another tag
    theirs = api.get("/interrupts", params={"assigned_to": "me"}, headers=bob)
    assert others in [i["id"] for i in theirs.json()["items"]]
    again = api.get(
        "/interrupts",
        params={"assigned_to": "me"},
        headers=bob
        | {
            "If-None-Match": api.get(
                "/interrupts", params={"assigned_to": "me"}, headers=ada
            ).headers["ETag"]
        },
    )
    assert again.status_code == 200 and again.headers["ETag"] == theirs.headers["ETag"]

    # eve is not among the assignees, the watcher ada is not an assignee of bob's
    for who, iid in ((eve, via_group), (bob, via_group), (ada, others)):
        r = api.post(f"/interrupts/{iid}/resolve", json={"value": True}, headers=who)
        assert r.status_code == 403 and r.json()["error"]["code"] == "not_assignee", r.text
    assert api.get(f"/interrupts/{via_group}").json()["status"] == "pending"
    refusals = api.get(f"/interrupts/{via_group}/audit").json()["items"]
    assert [(e["person"]["sub"], e["outcome"]) for e in refusals] == [
        ("eve", "not_assignee"),
        ("bob", "not_assignee"),
    ]
    for who, iid in ((ada, via_group), (ada, by_sub), (bob, others)):
        r = api.post(f"/interrupts/{iid}/resolve", json={"value": True}, headers=who)
        assert r.status_code == 200, r.text
    accepted = api.get(f"/interrupts/{by_sub}/audit").json()["items"][-1]
    assert accepted["outcome"] == "accepted" and accepted["person"]["sub"] == "ada"
    assert resolve(api, unassigned, "plain").status_code == 200


def test_reassignment_moves_who_may_answer_from_one_person_to_another(
    api: httpx.Client, oidc: OidcProvider
) -> None:
    ada, bob = bearer(oidc.token("ada")), bearer(oidc.token("bob"))
    iid = waiting_on(api, "counter")  # group:finance: ada may, bob may not
    r = api.post(f"/interrupts/{iid}/resolve", json={"value": True}, headers=bob)
    assert r.json()["error"]["code"] == "not_assignee"
    reassigned(api, iid, "group:ops", watchers=["group:finance"])
    r = api.post(f"/interrupts/{iid}/resolve", json={"value": True}, headers=ada)
    assert r.status_code == 403 and r.json()["error"]["code"] == "not_assignee"
    assert iid not in [
        i["id"]
        for i in api.get("/interrupts", params={"assigned_to": "me"}, headers=ada).json()["items"]
    ]
    r = api.post(f"/interrupts/{iid}/resolve", json={"value": True}, headers=bob)
    assert r.status_code == 200, r.text
    assert r.json()["resolution"]["person"]["sub"] == "bob"
    outcomes = [e["outcome"] for e in api.get(f"/interrupts/{iid}/audit").json()["items"]]
    assert outcomes == ["not_assignee", "assigned", "not_assignee", "accepted"]


def test_an_email_the_token_does_not_say_is_verified_does_not_name_an_assignee(
    api: httpx.Client, oidc: OidcProvider
) -> None:
    """docs/design.md, "People": a token whose ``email`` has no ``email_verified: true``
    (an email the user may have set themselves) answers as its subject only."""
    iid = waiting_on(api, "assigned")  # user:lead@example.com among the assignees
    unverified = oidc.mint(sub="mallory", email="Lead@Example.com", email_verified=None, groups=[])
    r = api.post(f"/interrupts/{iid}/resolve", json={"value": True}, headers=bearer(unverified))
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "not_assignee"
    assert api.get(f"/interrupts/{iid}").json()["status"] == "pending"
    # assigned by subject, the same token answers
    reassigned(api, iid, "user:mallory", watchers=[])
    r = api.post(f"/interrupts/{iid}/resolve", json={"value": True}, headers=bearer(unverified))
    assert r.status_code == 200, r.text
    assert r.json()["resolution"]["person"]["email"] is None


def test_a_group_given_the_assign_scope_assigns_and_others_may_not(
    api: httpx.Client, oidc: OidcProvider
) -> None:
    """BROKER_OIDC_GROUP_SCOPES gives ``interrupts:assign`` to group ops (bob), not eve."""
    iid = waiting_on(api, "counter")
    body = {"assignees": ["user:eve@example.com"]}
    eve = bearer(oidc.token("eve"))
    r = api.post(f"/interrupts/{iid}/assign", json=body, headers=eve)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["scope"] == auth.ASSIGN
    r = api.post(f"/interrupts/{iid}/assign", json=body, headers=bearer(oidc.token("bob")))
    assert r.status_code == 200, r.text
    assert r.json()["assignees"] == ["user:eve@example.com"]
    r = api.post(f"/interrupts/{iid}/resolve", json={"value": True}, headers=eve)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("comment", ["paint \x1b[31mred", "nul\x00", "x" * 2001])
def test_a_reassignment_comment_is_checked_like_an_answers(api: httpx.Client, comment: str) -> None:
    iid = waiting_on(api, "counter")
    body = {"assignees": ["user:x"], "comment": comment}
    r = api.post(f"/interrupts/{iid}/assign", json=body, headers=as_("lead"))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_request"
    assert api.get(f"/interrupts/{iid}").json()["assignees"] == ["group:finance"]
    assert api.get(f"/interrupts/{iid}/audit").json()["items"] == []
