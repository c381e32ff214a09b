"""Bulk answers (``POST /interrupts/resolve``): each interrupt answered on its own through
the channel, exactly once, with its own audit entry; no all-or-nothing (docs/design.md,
"Bulk answers"). Real API and worker processes, auth on."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from broker.core import auth, bulk, connections
from broker.core.keys import Keys
from broker.core.settings import Settings
from broker.core.store import Store
from tests import state
from tests.flow import run_state, start, wait_status
from tests.graphs import count
from tests.harness import Broker, wait_until
from tests.servers import RedisServer
from tests.stored import waiting

ADMIN = "k-admin-" + uuid.uuid4().hex
LIMITED = "k-limited-" + uuid.uuid4().hex
READER = "k-reader-" + uuid.uuid4().hex
ANSWERER = "k-answerer-" + uuid.uuid4().hex
TEAM = "k-team-" + uuid.uuid4().hex
KEYS = [
    {"id": "ops", "key_sha256": auth.digest(ADMIN), "scopes": [auth.ADMIN]},
    {
        "id": "counter-bot",
        "key_sha256": auth.digest(LIMITED),
        "scopes": [auth.READ, auth.RESOLVE],
        "agents": ["counter"],
    },
    {"id": "dash", "key_sha256": auth.digest(READER), "scopes": [auth.READ]},
    {"id": "blind-bot", "key_sha256": auth.digest(ANSWERER), "scopes": [auth.RESOLVE]},
    {"id": "team-bot", "key_sha256": auth.digest(TEAM), "scopes": [auth.READ, auth.RESOLVE]},
]
# the naming agent's questions are for Ada: a key answers them only on her behalf
RULES = [{"agent": "naming", "assignees": ["user:ada@example.com"]}]


# -- the selection by filter, at the store ----------------------------------------------


async def test_a_filter_takes_the_oldest_visible_and_says_when_more_matched(
    store: Store,
) -> None:
    _, mine = await waiting(store, "a", *({"type": "approval", "n": n} for n in range(7)))
    await waiting(store, "b", {"type": "approval"})
    everyone = auth.Principal("ops", frozenset({auth.ADMIN}))
    only_a = auth.Principal("a-bot", frozenset({auth.READ}), agents=frozenset({"a"}))

    async def pick(who: auth.Principal, limit: int, **wanted: str) -> tuple[list[str], bool]:
        args = {"agent_id": None, "itype": None, "thread_id": None, **wanted}
        return await bulk.pending_matching(store, who, limit=limit, **args)

    assert await pick(everyone, 5, agent_id="a") == (mine[:5], True)
    assert await pick(everyone, 7, agent_id="a") == (mine, False)
    assert await pick(only_a, 500, itype="approval") == (mine, False)
    assert await pick(only_a, 500, agent_id="b") == ([], False)
    found, more = await pick(everyone, 500, itype="approval")
    assert len(found) == 8 and not more


async def test_a_filter_reads_a_bounded_number_of_pages_and_says_so(store: Store) -> None:
    """A key limited to some agents pages the type index past every other agent's
    interrupts: the filter stops after ``max_pages`` pages and says it was cut short."""
    await waiting(store, "b", *({"type": "approval", "n": n} for n in range(450)))
    _, [mine] = await waiting(store, "a", {"type": "approval"})
    some = auth.Principal("ac-bot", frozenset({auth.READ}), agents=frozenset({"a", "c"}))
    args: dict[str, Any] = {"agent_id": None, "itype": "approval", "thread_id": None}
    # each page reads at most 200 records here: two pages do not reach the last one
    assert await bulk.pending_matching(store, some, limit=1, max_pages=2, **args) == ([], True)
    assert await bulk.pending_matching(store, some, limit=1, **args) == ([mine], False)


async def test_a_filter_skips_what_others_are_assigned_to(store: Store) -> None:
    """docs/design.md, "Bulk answers": selected by filter, an interrupt assigned to
    others is left out (not refused and audited); by ids it is refused per item."""
    _, [theirs] = await waiting(store, "a", {"type": "approval"}, assignees=("user:ada",))
    _, [open_one] = await waiting(store, "a", {"type": "approval"})
    _, [hers] = await waiting(store, "a", {"type": "approval"}, assignees=("group:finance",))
    args: dict[str, Any] = {"agent_id": "a", "itype": None, "thread_id": None}
    key = auth.Principal("team", frozenset({auth.READ, auth.RESOLVE}))
    assert await bulk.pending_matching(store, key, **args) == ([open_one], False)
    carol = auth.Principal(
        None,
        frozenset({auth.READ, auth.RESOLVE}),
        person=auth.Person("carol", "https://idp", None, None, frozenset({"finance"})),
    )
    assert await bulk.pending_matching(store, carol, **args) == ([open_one, hers], False)
    everyone = auth.Principal("ops", frozenset({auth.ADMIN}))
    assert await bulk.pending_matching(store, everyone, **args) == (
        [theirs, open_one, hers],
        False,
    )


# -- end to end -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    p = f"ibt{uuid.uuid4().hex[:10]}"
    b = Broker(
        redis_url,
        p,
        tmp_path_factory.mktemp("bulk"),
        BROKER_AUTH="on",
        BROKER_API_KEYS=json.dumps(KEYS),
        BROKER_ASSIGNMENT=json.dumps(RULES),
    )
    with b.serving():
        yield b


def _client(broker: Broker, key: str) -> httpx.Client:
    return httpx.Client(base_url=broker.url, timeout=60, headers={"Authorization": f"Bearer {key}"})


@pytest.fixture
def admin(keyed: Broker) -> Iterator[httpx.Client]:
    with _client(keyed, ADMIN) as c:
        yield c


def _waiting(admin: httpx.Client, agent: str, n: int) -> list[tuple[str, str, str]]:
    """``n`` new runs of ``agent``, each stopped on its first interrupt: (run id, thread
    id, interrupt id) in the order the runs started."""
    data = {"messages": [{"role": "user", "content": "hello"}]} if agent == "naming" else {}
    runs = [start(admin, agent, data) for _ in range(n)]

    def stopped() -> list[tuple[str, str, str]] | None:
        out = []
        for run in runs:
            state_ = run_state(admin, run["run_id"])
            if state_["status"] != "interrupted" or not state_["pending_interrupts"]:
                return None
            out.append((run["run_id"], run["thread_id"], state_["pending_interrupts"][0]))
        return out

    got: list[tuple[str, str, str]] = wait_until(stopped, f"{n} {agent} runs to stop")
    return got


def _bulk(client: httpx.Client, **body: Any) -> dict[str, Any]:
    r = client.post("/interrupts/resolve", json=body)
    assert r.status_code == 200, r.text
    got: dict[str, Any] = r.json()
    return got


def _audit(admin: httpx.Client, iid: str) -> list[tuple[str, str | None]]:
    items = admin.get(f"/interrupts/{iid}/audit").json()["items"]
    return [(e["outcome"], e.get("comment")) for e in items]


def _resumed_once(admin: httpx.Client, keyed: Broker, run_id: str, thread_id: str) -> None:
    """docs/design.md, "Invariants" 2: the accepted answer resumed the run exactly once."""
    done = wait_status(admin, run_id, "succeeded", "failed")
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 2, done  # the start, and the one resume
    events = admin.get(f"/runs/{run_id}/events").text
    types = [line[7:] for line in events.splitlines() if line.startswith("event: ")]
    assert types.count("run.resumed") == 1, types
    assert types.count("interrupt.resolved") == 1, types
    prefix = keyed.env["BROKER_KEY_PREFIX"]
    url = keyed.env["REDIS_URL"]
    # the node after interrupt() ran once: the graph saw the answer once
    assert count(url, prefix, "answered", thread_id) == 1
    assert count(url, prefix, "after", thread_id) == 1


@pytest.mark.slow
@pytest.mark.parametrize("by", ["ids", "filter"])
def test_a_hundred_in_one_request_three_answered_elsewhere_first(
    admin: httpx.Client, keyed: Broker, by: str
) -> None:
    """By ids, the three answered elsewhere get 409 with the winner and the 97 others are
    accepted; by filter, the three are no longer pending and are not picked. Either way
    each interrupt has its own audit entry and each run resumes exactly once."""
    stopped = _waiting(admin, "counter", 100)
    iids = [iid for _, _, iid in stopped]
    elsewhere = {iids[0], iids[41], iids[99]}
    for iid in elsewhere:
        r = admin.post(f"/interrupts/{iid}/resolve", json={"value": "first"})
        assert r.status_code == 200, r.text

    # the inbox's order (oldest recorded first), which a filter answers in
    listed = admin.get("/interrupts", params={"agent_id": "counter", "limit": 500}).json()
    inbox = [i["id"] for i in listed["items"]]
    chosen = {"ids": iids} if by == "ids" else {"filter": {"agent_id": "counter"}}
    got = _bulk(admin, **chosen, value=True, comment="batch approved", resolved_by="ops-team")

    if by == "ids":
        assert (got["accepted"], got["refused"], got["truncated"]) == (97, 3, False)
        assert [r["interrupt_id"] for r in got["results"]] == iids  # in the order sent
    else:
        assert (got["accepted"], got["refused"], got["truncated"]) == (97, 0, False)
        picked = [r["interrupt_id"] for r in got["results"]]
        assert sorted(picked) == sorted(set(iids) - elsewhere)  # the pending ones only
        # oldest first, as the inbox lists them (by when each was recorded: two workers'
        # clocks may order created_at otherwise)
        assert picked == inbox
    for result in got["results"]:
        iid = result["interrupt_id"]
        if iid in elsewhere:
            assert result["status"] == 409, result
            assert result["error"]["code"] == "already_resolved"
            assert result["error"]["resolution"]["value"] == "first"
            assert "interrupt" not in result
        else:
            assert result["status"] == 200, result
            assert "error" not in result
            resolution = result["interrupt"]["resolution"]
            assert result["interrupt"]["status"] == "resolved"
            assert (resolution["value"], resolution["comment"]) == (True, "batch approved")
            assert resolution["resolved_by"] == "ops-team"
    for run_id, thread_id, iid in stopped:
        if iid not in elsewhere:
            assert _audit(admin, iid) == [("accepted", "batch approved")]
        elif by == "ids":
            assert _audit(admin, iid) == [
                ("accepted", None),
                ("already_resolved", "batch approved"),
            ]
        else:
            assert _audit(admin, iid) == [("accepted", None)]
        _resumed_once(admin, keyed, run_id, thread_id)
        values = run_state(admin, run_id)["output"]["values"]
        assert values["answer"] == ("first" if iid in elsewhere else True)
    # nothing of the agent is left pending: a second pass picks nothing
    assert _bulk(admin, filter={"agent_id": "counter"}, value=True)["results"] == []


@pytest.mark.slow
def test_bad_bodies_change_nothing(admin: httpx.Client, keyed: Broker, redis_url: str) -> None:
    [(_, _, iid)] = _waiting(admin, "counter", 1)
    prefix = keyed.env["BROKER_KEY_PREFIX"]
    before = state.snapshot(redis_url, prefix)
    one = {"ids": [iid], "value": True}
    bad: list[tuple[Any, int]] = [
        ({**one, "filter": {"agent_id": "counter"}}, 422),  # both
        ({"value": True}, 422),  # neither
        ({"ids": [iid, *(str(uuid.uuid4()) for _ in range(500))], "value": True}, 422),
        ({"ids": [iid, iid], "value": True}, 422),
        ({"ids": [iid, "not:an:id"], "value": True}, 422),
        ({"ids": [], "value": True}, 422),
        ({"ids": None, "filter": {"agent_id": "counter"}, "value": True}, 422),
        ({"filter": {}, "value": True}, 422),
        ({"filter": {"agent_id": None}, "value": True}, 422),
        ({"filter": {"agent_id": "counter", "status": "resolved"}, "value": True}, 422),
        ({"ids": [iid]}, 422),  # no value
        ({**one, "comment": "ring\x07"}, 422),
        ({**one, "comment": "x" * 2001}, 422),
        ({**one, "extra": 1}, 422),
        ([iid], 422),
    ]
    for body, status in bad:
        r = admin.post("/interrupts/resolve", json=body)
        assert r.status_code == status, (body, r.text)
        assert r.json()["error"]["code"] == "invalid_request"
    assert admin.post("/interrupts/resolve", content=b'{"ids": [', headers=_JSON).status_code == 400
    assert admin.post("/interrupts/resolve", content=b"ids=x").status_code == 415
    huge = json.dumps({**one, "value": "x" * 300_000}).encode()
    assert admin.post("/interrupts/resolve", content=huge, headers=_JSON).status_code == 413
    # the bulk path is no interrupt id: other methods there are 405
    wrong = admin.get("/interrupts/resolve")
    assert (wrong.status_code, wrong.headers["Allow"]) == (405, "POST")
    assert state.snapshot(redis_url, prefix) == before
    assert admin.get(f"/interrupts/{iid}").json()["status"] == "pending"
    assert _bulk(admin, **one)["accepted"] == 1


_JSON = {"Content-Type": "application/json"}


@pytest.mark.slow
def test_a_key_limited_to_some_agents_never_touches_the_others(
    admin: httpx.Client, keyed: Broker
) -> None:
    [(_, _, other)] = _waiting(admin, "naming", 1)  # an approval of another agent
    [(run_id, thread_id, mine)] = _waiting(admin, "counter", 1)
    with _client(keyed, LIMITED) as limited:
        got = _bulk(limited, ids=[other, mine], value=True)
        assert [(r["interrupt_id"], r["status"]) for r in got["results"]] == [
            (other, 404),
            (mine, 200),
        ]
        assert got["results"][0]["error"]["code"] == "interrupt_not_found"
        assert "already" not in got["results"][0]["error"]["message"]
        # the filter sees its own agents only, whatever it names
        assert _bulk(limited, filter={"type": "approval"}, value=True)["results"] == []
        assert _bulk(limited, filter={"agent_id": "naming"}, value=True)["results"] == []
    assert admin.get(f"/interrupts/{other}").json()["status"] == "pending"
    assert _audit(admin, other) == []  # a key that cannot see it leaves no trace
    _resumed_once(admin, keyed, run_id, thread_id)
    assert _bulk(admin, ids=[other], value=True)["accepted"] == 1


@pytest.mark.slow
def test_without_the_resolve_scope_each_item_is_refused(
    admin: httpx.Client, keyed: Broker, redis_url: str
) -> None:
    stopped = _waiting(admin, "counter", 2)
    iids = [iid for _, _, iid in stopped]
    with _client(keyed, READER) as reader:
        for body in ({"ids": iids}, {"filter": {"agent_id": "counter"}}):
            got = _bulk(reader, **body, value=True)
            assert sorted(r["interrupt_id"] for r in got["results"]) == sorted(iids)
            assert {(r["status"], r["error"]["code"]) for r in got["results"]} == {
                (403, "forbidden")
            }
            assert (got["accepted"], got["refused"]) == (0, 2)
    for iid in iids:
        assert _audit(admin, iid) == [("forbidden", None), ("forbidden", None)]
    # a filter reads the pending list: a key that may not read is refused whole
    prefix = keyed.env["BROKER_KEY_PREFIX"]
    before = state.snapshot(redis_url, prefix)
    with _client(keyed, ANSWERER) as answerer:
        r = answerer.post("/interrupts/resolve", json={"filter": {"type": "approval"}, "value": 1})
        assert r.status_code == 403
        assert r.json()["error"]["scope"] == auth.READ
    assert state.snapshot(redis_url, prefix) == before
    got = _bulk(admin, ids=iids, value=True)
    assert got["accepted"] == 2


@pytest.mark.slow
def test_both_interrupts_of_one_run_in_one_batch(admin: httpx.Client) -> None:
    """Each accepted answer queues its run's job, named for the interrupt: a batch holding
    two interrupts of one run queues two jobs. The first resumes the run with every
    answer accepted by then; the second finds nothing left to apply, or applies the
    answer that came after the first began (docs/design.md, "Bulk answers")."""
    run = start(admin, "parallel", {})
    waited = wait_status(admin, run["run_id"], "interrupted", pending=2)
    iids = waited["pending_interrupts"]
    got = _bulk(admin, ids=iids, value=True, comment="both fine")
    assert got["accepted"] == 2
    done = wait_status(admin, run["run_id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done
    assert done["output"]["values"]["answers"] == {"budget": True, "launch_date": True}
    events = admin.get(f"/runs/{run['run_id']}/events").text
    types = [line[7:] for line in events.splitlines() if line.startswith("event: ")]
    assert types.count("interrupt.resolved") == 2
    # one resume per batch, or two when the second answer came after the first began
    assert 1 <= types.count("run.resumed") <= 2, types
    assert done["attempts"] == 1 + types.count("run.resumed")


@pytest.mark.slow
def test_an_assigned_interrupt_refuses_others_in_a_batch_too(
    admin: httpx.Client, keyed: Broker
) -> None:
    [(_, _, assigned)] = _waiting(admin, "naming", 1)
    [(run_id, thread_id, open_one)] = _waiting(admin, "counter", 1)
    with _client(keyed, TEAM) as team:
        got = _bulk(team, ids=[assigned, open_one], value=True, comment="for the team")
    assert [(r["status"], r.get("error", {}).get("code")) for r in got["results"]] == [
        (403, "not_assignee"),
        (200, None),
    ]
    assert _audit(admin, assigned) == [("not_assignee", "for the team")]
    assert admin.get(f"/interrupts/{assigned}").json()["status"] == "pending"
    _resumed_once(admin, keyed, run_id, thread_id)
    # the admin key answers on Ada's behalf
    got = _bulk(admin, ids=[assigned], value=True, resolved_by="ada@example.com")
    assert got["accepted"] == 1


# -- Redis failing mid-batch, at the core ------------------------------------------------


async def test_redis_failing_mid_batch_keeps_the_accepted_and_starts_no_more(
    tmp_path: Path, prefix: str
) -> None:
    """docs/design.md, "Bulk answers": an outage under one answer is that answer's 503;
    the answers accepted before it stay listed as accepted, and none is started after it."""
    server = RedisServer(tmp_path / "redis").start()
    settings = Settings(redis_url=server.url, key_prefix=prefix, redis_timeout_s=2)
    client = connections.redis_client(settings)
    queue = connections.queue_pool(settings, Keys(prefix).queue)
    watcher = aioredis.Redis.from_url(server.url, decode_responses=True)
    try:
        store = Store(client, settings)
        _, ids = await waiting(store, "a", *({"type": "approval", "n": n} for n in range(300)))
        everyone = auth.Principal("ops", frozenset({auth.ADMIN}))
        answering = asyncio.ensure_future(
            bulk.answer_each(store, queue, ids, True, principal=everyone, concurrency=1)
        )
        # the server stops once the third interrupt is answered
        while await watcher.hget(store.keys.interrupt(ids[2]), "status") != "resolved":
            assert not answering.done()
            await asyncio.sleep(0)
        server.stop()
        results = await answering
    finally:
        await watcher.aclose()
        await client.aclose()
        await queue.aclose()
        server.stop()
    statuses = [r["status"] for r in results]
    accepted = statuses.index(503)
    assert accepted >= 3 and set(statuses[:accepted]) == {200}
    assert all(r["interrupt"]["status"] == "resolved" for r in results[:accepted])
    failed, *skipped = results[accepted:]
    assert failed["error"]["code"] == "redis_unavailable"
    assert "not attempted" not in failed["error"]["message"]
    assert skipped and all(
        r["status"] == 503
        and r["error"]["code"] == "redis_unavailable"
        and r["error"]["message"].startswith("not attempted")
        for r in skipped
    )
    assert bulk.summary(results, truncated=False)["accepted"] == accepted
