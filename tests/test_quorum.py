"""Quorum and chains over HTTP (docs/design.md, "Quorum and chains"): real API and
worker processes, people signed in at a real OpenID provider (tests/oidc.py). An
interrupt declaring ``approval`` takes votes; the one vote that meets its rule resolves
it and resumes the run exactly once (docs/design.md, "Invariants" 2), however many
people vote at once and however often each tries.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import jwt
import pytest

from broker.core import assignment, auth
from tests.flow import next_interrupt, start, wait_status
from tests.graphs import count
from tests.harness import Broker
from tests.oidc import ACCOUNTS, OidcProvider, available, oidc_provider
from tests.principals import KeySpec, headers, keys_json, new_key

pytestmark = pytest.mark.skipif(
    not available(), reason="node or tests/node/node_modules is missing"
)

KEYS: dict[str, KeySpec] = {
    "ops": (new_key("ops"), ["admin"], None),
    "svc": (new_key("svc"), [auth.READ, auth.RESOLVE, auth.ON_BEHALF], None),
}
PEOPLE: dict[str, dict[str, Any]] = {
    **ACCOUNTS,  # ada is in finance, bob in ops, eve in no group
    "carl": {"email": "carl@example.com", "name": "Carl", "groups": ["finance"]},
    "dana": {"email": "dana@example.com", "name": "Dana", "groups": ["finance"]},
    "lena": {"email": "lena@example.com", "name": "Lena", "groups": ["legal"]},
    "cfo": {"email": "cfo@example.com", "name": "The CFO", "groups": []},
}

CONFIGURED = [{"agent": "counter", "approval": {"quorum": 1, "of": "group:ops"}}]


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    with oidc_provider(tmp_path_factory.mktemp("oidc-quorum"), accounts=PEOPLE) as provider:
        yield provider


@pytest.fixture(scope="module")
def voting(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory, people: OidcProvider
) -> Iterator[Broker]:
    b = Broker(
        redis_url,
        f"ibt{uuid.uuid4().hex[:10]}",
        tmp_path_factory.mktemp("quorum"),
        BROKER_AUTH="on",
        BROKER_API_KEYS=keys_json(KEYS),
        BROKER_APPROVAL_RULES=json.dumps(CONFIGURED),
        **people.broker_env(client_id=False),
    )
    with b.serving():
        yield b


@pytest.fixture(scope="module")
def tokens(people: OidcProvider) -> dict[str, dict[str, str]]:
    return {sub: {"Authorization": f"Bearer {people.token(sub)}"} for sub in PEOPLE}


@pytest.fixture
def api(voting: Broker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=voting.url, timeout=30, headers=headers(KEYS, "ops")) as c:
        yield c


def vote(
    api: httpx.Client, iid: str, who: dict[str, str], value: Any = True, **body: Any
) -> httpx.Response:
    return api.post(f"/interrupts/{iid}/resolve", json={"value": value, **body}, headers=who)


def code(r: httpx.Response) -> str:
    return str(r.json()["error"]["code"])


def audit_outcomes(api: httpx.Client, iid: str) -> list[tuple[str, str]]:
    items = api.get(f"/interrupts/{iid}/audit").json()["items"]
    return [(e["outcome"], e["actor"]) for e in items]


def resumed_once(api: httpx.Client, voting: Broker, run: dict[str, Any]) -> dict[str, Any]:
    """docs/design.md, "Invariants" 2: the decision resumed the run exactly once."""
    done = wait_status(api, run["run_id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 2, done  # the start, and the one resume
    events = api.get(f"/runs/{run['run_id']}/events").text
    types = [line[7:] for line in events.splitlines() if line.startswith("event: ")]
    assert types.count("run.resumed") == 1, types
    assert types.count("interrupt.resolved") == 1, types
    url, prefix = voting.env["REDIS_URL"], voting.env["BROKER_KEY_PREFIX"]
    assert count(url, prefix, "answered", run["thread_id"]) == 1
    return done


def test_two_of_finance_decide_once_however_many_vote_at_once(
    api: httpx.Client, voting: Broker, tokens: dict[str, dict[str, str]]
) -> None:
    run = start(api, "quorum", {})
    target = next_interrupt(api, run["run_id"])
    iid = target["id"]
    assert target["approval"] == {
        "quorum": 2,
        "of": "group:finance",
        "reject": "first",
        "votes": [],
        "state": "collecting",
    }
    # not in finance: no vote, nothing recorded
    refused = vote(api, iid, tokens["bob"])
    assert refused.status_code == 403 and code(refused) == "not_eligible", refused.text
    assert vote(api, iid, tokens["ada"], "yes").status_code == 422  # an approval is a bool

    # three of finance answer at once, each of them many times over
    voters = ["ada"] * 8 + ["carl"] * 8 + ["dana"] * 7
    with ThreadPoolExecutor(len(voters)) as pool:
        answers = list(pool.map(lambda who: vote(api, iid, tokens[who]), voters))
    statuses = sorted((r.status_code, code(r) if r.status_code != 200 else "") for r in answers)
    accepted = [r for r in answers if r.status_code == 200]
    assert len(accepted) == 2, statuses  # the two votes that met the rule
    assert all(r.status_code in (200, 409) for r in answers), statuses
    assert {code(r) for r in answers if r.status_code == 409} <= {
        "already_voted",
        "already_resolved",
    }

    done = api.get(f"/interrupts/{iid}").json()
    assert done["status"] == "resolved"
    resolution = done["resolution"]
    votes = resolution["votes"]
    assert len(votes) == 2 and all(v["vote"] is True for v in votes)
    assert len({v["by"]["sub"] for v in votes}) == 2
    assert resolution["value"] == {"approved": True, "votes": votes}
    assert done["approval"]["state"] == "decided" and done["approval"]["votes"] == votes
    claims = jwt.decode(resolution["receipt"], options={"verify_signature": False})
    assert claims["votes"] == votes
    # the third member of finance is too late; a repeat of a vote is refused as such
    late = next(p for p in ("ada", "carl", "dana") if p not in {v["by"]["sub"] for v in votes})
    again = vote(api, iid, tokens[late])
    assert again.status_code == 409 and code(again) == "already_resolved", again.text

    resumed = resumed_once(api, voting, run)
    assert resumed["output"]["values"]["answer"] == {"approved": True, "votes": votes}
    outcomes = audit_outcomes(api, iid)
    assert [o for o, _ in outcomes].count("voted") == 2, outcomes
    assert [o for o, _ in outcomes].count("accepted") == 1, outcomes
    assert ("not_eligible", "bob@example.com") in outcomes
    # bob, the bad answer, each try, the late vote, and the decision
    assert len(outcomes) == 2 + len(voters) + 1 + 1, outcomes


def test_a_person_votes_once(api: httpx.Client, tokens: dict[str, dict[str, str]]) -> None:
    run = start(api, "quorum", {})
    iid = next_interrupt(api, run["run_id"])["id"]
    first = vote(api, iid, tokens["ada"], comment="fine by me")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["status"] == "pending" and body["approval"]["state"] == "collecting"
    [cast] = body["approval"]["votes"]
    assert cast["by"]["sub"] == "ada" and cast["vote"] is True
    assert cast["comment"] == "fine by me"
    with ThreadPoolExecutor(20) as pool:
        repeats = list(pool.map(lambda _: vote(api, iid, tokens["ada"]), range(20)))
    assert {(r.status_code, code(r)) for r in repeats} == {(409, "already_voted")}
    now = api.get(f"/interrupts/{iid}").json()
    assert now["status"] == "pending" and len(now["approval"]["votes"]) == 1
    outcomes = audit_outcomes(api, iid)
    assert outcomes.count(("voted", "ada@example.com")) == 1
    assert outcomes.count(("already_voted", "ada@example.com")) == 20
    # a rejection by another member decides (reject: first)
    no = vote(api, iid, tokens["carl"], False, comment="not this quarter")
    assert no.status_code == 200 and no.json()["status"] == "resolved", no.text
    assert no.json()["resolution"]["value"]["approved"] is False
    done = wait_status(api, run["run_id"], "succeeded")
    assert done["output"]["values"]["answer"]["approved"] is False


def test_a_chain_is_answered_in_order_and_its_first_rejection_decides(
    api: httpx.Client, voting: Broker, tokens: dict[str, dict[str, str]]
) -> None:
    run = start(api, "chained", {})
    iid = next_interrupt(api, run["run_id"])["id"]
    early = vote(api, iid, tokens["cfo"])
    assert early.status_code == 403 and code(early) == "not_your_turn", early.text
    assert early.json()["error"]["step"] == "group:legal"
    assert vote(api, iid, tokens["lena"]).status_code == 200  # legal approves
    assert code(vote(api, iid, tokens["lena"])) == "already_voted"
    assert code(vote(api, iid, tokens["ada"])) == "not_your_turn"  # the CFO's turn now
    no = vote(api, iid, tokens["cfo"], False)
    assert no.status_code == 200, no.text
    resolution = no.json()["resolution"]
    assert resolution["value"]["approved"] is False
    assert [(v["by"]["sub"], v["vote"]) for v in resolution["votes"]] == [
        ("lena", True),
        ("cfo", False),
    ]
    done = resumed_once(api, voting, run)
    assert done["output"]["values"]["answer"]["approved"] is False


def test_a_rejection_at_the_chains_first_step_ends_it_before_the_next(
    api: httpx.Client, voting: Broker, tokens: dict[str, dict[str, str]]
) -> None:
    run = start(api, "chained", {})
    iid = next_interrupt(api, run["run_id"])["id"]
    no = vote(api, iid, tokens["lena"], False)  # legal rejects: the CFO is never asked
    assert no.status_code == 200, no.text
    assert no.json()["status"] == "resolved"
    resolution = no.json()["resolution"]
    assert resolution["value"]["approved"] is False
    assert [(v["by"]["sub"], v["vote"]) for v in resolution["votes"]] == [("lena", False)]
    late = vote(api, iid, tokens["cfo"])
    assert late.status_code == 409 and code(late) == "already_resolved", late.text
    done = resumed_once(api, voting, run)
    assert done["output"]["values"]["answer"]["approved"] is False


def test_with_reject_quorum_one_rejection_does_not_decide(
    api: httpx.Client, tokens: dict[str, dict[str, str]]
) -> None:
    run = start(api, "quorum_rejects", {})
    iid = next_interrupt(api, run["run_id"])["id"]
    assert vote(api, iid, tokens["ada"], False).json()["status"] == "pending"
    assert vote(api, iid, tokens["carl"], True).json()["status"] == "pending"
    decided = vote(api, iid, tokens["dana"], False).json()
    assert decided["status"] == "resolved"
    assert decided["resolution"]["value"]["approved"] is False
    assert (
        wait_status(api, run["run_id"], "succeeded")["output"]["values"]["answer"]["approved"]
        is False
    )


def test_a_service_on_behalf_decides_outright(
    api: httpx.Client, tokens: dict[str, dict[str, str]]
) -> None:
    run = start(api, "quorum", {})
    iid = next_interrupt(api, run["run_id"])["id"]
    assert vote(api, iid, tokens["ada"]).status_code == 200
    r = vote(api, iid, headers(KEYS, "svc"), False, resolved_by="cfo@example.com")
    assert r.status_code == 200, r.text
    votes = r.json()["resolution"]["votes"]
    assert votes[-1]["decides"] is True and votes[-1]["resolved_by"] == "cfo@example.com"
    assert r.json()["resolution"]["value"]["approved"] is False


def test_a_rule_votes_cannot_decide_fails_closed(
    api: httpx.Client, voting: Broker, tokens: dict[str, dict[str, str]]
) -> None:
    """A rule on an ask is refused where the interrupt is recorded: only on_behalf answers."""
    run = start(api, "misruled", {})
    target = next_interrupt(api, run["run_id"])
    assert target["assignees"] == [assignment.INVALID]
    assert target["approval"] is None
    refused = vote(api, target["id"], tokens["ada"], "go")
    assert refused.status_code == 403 and code(refused) == "not_assignee", refused.text
    logged = "".join(w.output() for w in voting.workers)
    assert "declares an unusable decision rule" in logged
    assert vote(api, target["id"], headers(KEYS, "svc"), "go").status_code == 200
    wait_status(api, run["run_id"], "succeeded")


def test_bulk_answers_cast_votes(api: httpx.Client, tokens: dict[str, dict[str, str]]) -> None:
    runs = [start(api, "quorum", {}) for _ in range(2)]
    ids = [next_interrupt(api, r["run_id"])["id"] for r in runs]
    for who in ("ada", "carl"):
        r = api.post("/interrupts/resolve", json={"ids": ids, "value": True}, headers=tokens[who])
        assert r.status_code == 200, r.text
        assert r.json()["accepted"] == 2, r.text
    for run in runs:
        assert wait_status(api, run["run_id"], "succeeded")["output"]["values"]["answer"][
            "approved"
        ]


def test_a_configured_rule_applies_where_the_value_declares_none(
    api: httpx.Client, voting: Broker, tokens: dict[str, dict[str, str]]
) -> None:
    run = start(api, "counter", {})
    target = next_interrupt(api, run["run_id"])
    assert target["approval"]["of"] == "group:ops"  # BROKER_APPROVAL_RULES
    assert code(vote(api, target["id"], tokens["ada"])) == "not_eligible"
    decided = vote(api, target["id"], tokens["bob"])
    assert decided.status_code == 200 and decided.json()["status"] == "resolved", decided.text
    resumed_once(api, voting, run)
