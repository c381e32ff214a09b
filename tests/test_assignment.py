"""Assignment at the store and channel level (docs/design.md, "Assignment"): who may
answer an interrupt with assignees, the assignee indexes and their cleanup, listing
what is assigned to a person, and reassignment. Real Redis, the real store and the
real channel; principals are built as the auth gate builds them.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import redis.asyncio as aioredis
from arq.connections import ArqRedis

from broker.core import assignment, audit, auth, channel, config, errors, expiry
from broker.core.codec import loads
from broker.core.records import Channel, InterruptStatus, RunStatus
from broker.core.settings import Settings
from broker.core.store import Attempt, Store
from tests.stored import raised, waiting

ISSUER = "https://id.example.test"


def person(sub: str, email: str | None = None, *groups: str) -> auth.Principal:
    """A signed-in person with the scopes people get by default."""
    return auth.Principal(
        key_id=None,
        scopes=frozenset({auth.READ, auth.RESOLVE}),
        person=auth.Person(sub, ISSUER, email, sub.title(), frozenset(groups)),
    )


ALICE = person("alice", "Alice@Example.com", "finance")
BOB = person("bob", "bob@example.com", "ops")
CAROL = person("carol", None, "finance")
SERVICE = auth.Principal(key_id="svc", scopes=frozenset({auth.RESOLVE, auth.ON_BEHALF}))
PLAIN_KEY = auth.Principal(key_id="plain", scopes=frozenset({auth.RESOLVE}))
ASSIGNER = auth.Principal(key_id="lead", scopes=frozenset({auth.ASSIGN}))


@pytest.fixture
def store(aredis: aioredis.Redis, settings: Settings) -> Store:
    return Store(aredis, settings)


async def assigned(
    store: Store, *assignees: str, watchers: tuple[str, ...] = (), agent: str = "a"
) -> str:
    """A pending interrupt with these assignees (names as given: the worker normalises
    them through ``assignment.policy`` before they reach the store)."""
    _, [iid] = await waiting(
        store, agent, {"type": "approval"}, assignees=assignees, watchers=watchers
    )
    return iid


async def answer(store: Store, queue: ArqRedis, iid: str, who: auth.Principal) -> str:
    """``accepted``, or the code of the refusal."""
    try:
        await channel.answer(store, queue, iid, True, channel=Channel.REST, principal=who)
    except errors.BrokerError as exc:
        return exc.code
    return "accepted"


# -- declaring ----------------------------------------------------------------------


def test_the_value_wins_over_the_rules_and_emails_compare_without_case() -> None:
    rules = [
        {"agent": "naming", "type": "approval", "assignees": ["group:ops"]},
        {"assignees": ["user:Boss@Example.com"], "watchers": ["group:audit"]},
    ]
    value = {"type": "approval", "assignees": ["user:Alice@Example.COM", "group:finance"]}
    got = assignment.policy(value, "naming", "approval", rules)
    assert got == assignment.Assignment(("user:alice@example.com", "group:finance"))
    assert assignment.policy({"type": "approval"}, "naming", "approval", rules) == (
        assignment.Assignment(("group:ops",))
    )
    assert assignment.policy({"type": "x"}, "other", "x", rules) == assignment.Assignment(
        ("user:boss@example.com",), ("group:audit",)
    )
    # an explicit empty list: nobody in particular, whatever the rules say
    assert assignment.policy({"assignees": []}, "naming", "approval", rules) is None
    assert assignment.policy("plain text", "other", None, None) is None


def test_bad_names_in_a_value_are_logged_and_left_out(caplog: pytest.LogCaptureFixture) -> None:
    rules = [{"assignees": ["group:fallback"]}]
    with caplog.at_level(logging.WARNING, "broker.core.assignment"):
        got = assignment.policy(
            {"assignees": ["team:x", "user:ok", 3, "group: padded"]}, "a", None, rules
        )
    assert got == assignment.Assignment(("user:ok",))
    assert "assignees[0]" in caplog.text and "assignees[2]" in caplog.text
    # nothing valid left: the rules apply, rather than leaving it open to anyone
    assert assignment.policy({"assignees": ["nobody"]}, "a", None, rules) == (
        assignment.Assignment(("group:fallback",))
    )


def test_the_rules_are_parsed_once_per_configuration() -> None:
    """The worker applies the rules to every new interrupt: a configuration is parsed
    once, and another configuration gets its own rules."""
    config = [{"agent": "a", "assignees": ["group:ops"]}]
    parsed = assignment.rules(config)
    assert assignment.rules(config) is parsed
    assert assignment.policy({}, "a", None, config) is parsed[0][2]
    other = [{"agent": "a", "assignees": ["group:finance"]}]
    assert assignment.rules(other)[0][2] == assignment.Assignment(("group:finance",))
    assert assignment.rules(config) is parsed
    assert expiry.rules([{"expires_in": 60}]) == expiry.rules([{"expires_in": 60}])
    deadlines = [{"expires_in": 60}]
    assert expiry.rules(deadlines) is expiry.rules(deadlines)


@pytest.mark.parametrize(
    "declared",
    [
        ["finance"],  # no kind
        "user:x",  # not a list
        [f"user:u{n}" for n in range(assignment.MAX_NAMES + 1)],  # too many
        {"group": "finance"},
    ],
)
def test_a_declaration_naming_nobody_valid_fails_closed(
    declared: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """docs/design.md, "Assignment": a bad declaration never leaves the interrupt open to
    anyone; with no rule matching it is assigned to a name no person has."""
    value = {"type": "approval", "assignees": declared, "watchers": ["user:w"]}
    with caplog.at_level(logging.ERROR, "broker.core.assignment"):
        got = assignment.policy(value, "billing", "approval", None, about="interrupt i-1")
    assert got == assignment.Assignment((assignment.INVALID,), ("user:w",))
    assert "billing" in caplog.text and "interrupt i-1" in caplog.text
    # a matching rule still applies
    rules = [{"agent": "billing", "assignees": ["group:fallback"]}]
    assert assignment.policy(value, "billing", "approval", rules) == (
        assignment.Assignment(("group:fallback",))
    )
    # an absent, null or empty declaration is no declaration of anyone
    for open_to_all in ({"type": "approval"}, {"assignees": None}, {"assignees": []}):
        assert assignment.policy(open_to_all, "billing", "approval", None) is None


async def test_an_interrupt_assigned_to_nobody_valid_is_answered_only_on_behalf(
    store: Store, queue: ArqRedis
) -> None:
    iid = await assigned(store, assignment.INVALID)
    for who in (ALICE, PLAIN_KEY):
        assert await answer(store, queue, iid, who) == "not_assignee"
    # the name is never one a caller can list or give
    with pytest.raises(errors.InvalidRequest):
        assignment.listed(PLAIN_KEY, assignment.INVALID)
    with pytest.raises(errors.InvalidRequest):
        await assignment.reassign(store, iid, [assignment.INVALID], None, principal=ASSIGNER)
    # an assigner gives it to someone, who may then answer; or a service answers for one
    await assignment.reassign(store, iid, ["user:alice"], None, principal=ASSIGNER)
    assert await answer(store, queue, iid, ALICE) == "accepted"
    other = await assigned(store, assignment.INVALID)
    assert await answer(store, queue, other, SERVICE) == "accepted"


@pytest.mark.parametrize(
    ("rules", "says"),
    [
        ('[{"type": "approval"}]', "needs assignees"),
        ('[{"assignees": ["alice"]}]', "rule 0 assignees[0] is not a name"),
        ('[{"assignees": ["user:a"], "watchers": ["x"]}]', "rule 0 watchers[0]"),
        ('[{"assignees": ["user:a"], "role": "x"}]', "unknown fields ['role']"),
        ('["user:a"]', "rule 0 must be an object"),
    ],
)
def test_unusable_rules_stop_the_process_at_start(redis_url: str, rules: str, says: str) -> None:
    settings = Settings(redis_url=redis_url, auth="off", assignment=rules)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="BROKER_ASSIGNMENT") as exc:
        config.check(settings, "worker")
    assert says in str(exc.value)


# -- recording and the indexes ------------------------------------------------------


async def test_an_unassigned_interrupt_stores_nothing_of_assignment(store: Store) -> None:
    _, [iid] = await waiting(store, "a", {"type": "approval"})
    h = await store.r.hgetall(store.keys.interrupt(iid))
    assert "assignees" not in h and "watchers" not in h
    view = (await store.interrupt(iid)).view()
    assert view["assignees"] == [] and view["watchers"] == []
    assert not [k async for k in store.r.scan_iter(f"{store.keys.prefix}:*:assignee:*")]


@pytest.mark.parametrize("how", ["resolve", "expire", "cancel", "finish", "moved_past"])
async def test_every_step_out_of_pending_leaves_the_assignee_indexes(
    store: Store, queue: ArqRedis, how: str
) -> None:
    """docs/design.md, "Assignment": an index holds pending interrupts only."""
    k = store.keys
    run = await store.create_run("a", None, {}, {})
    begun = await store.begin_attempt(run.id, "", "job-1")
    assert isinstance(begun, Attempt)
    first = raised(begun.run, {"n": 1})
    second = raised(begun.run, {"n": 2}, assignees=("user:alice", "group:ops"))
    _, iid = await store.record_interrupts(begun.run, [first, second], [], job_id="job-1")
    for name in ("user:alice", "group:ops"):
        assert await store.r.zscore(k.interrupts_by_assignee("pending", name), iid) is not None
    if how == "resolve":
        assert await answer(store, queue, iid, SERVICE) == "accepted"
    elif how == "expire":
        await store.r.hset(k.interrupt(iid), "expires_at_ms", "1")
        outcome, _, _ = await store.expire_script(
            iid, resolution=None, end_status=RunStatus.FAILED, event={}, audit_entry={}
        )
        assert outcome == "ok"
    elif how == "cancel":
        await channel.cancel(store, queue, run.id)
    else:
        # the other interrupt is answered and the run resumes past the assigned one
        assert await answer(store, queue, first.id, SERVICE) == "accepted"
        resumed = await store.begin_attempt(run.id, "", "job-2")
        assert isinstance(resumed, Attempt)
        if how == "finish":
            assert await store.record_finish(
                run.id, RunStatus.SUCCEEDED, applied=[first.id], job_id="job-2"
            )
        else:
            later = raised(resumed.run, {"n": 3})
            await store.record_interrupts(resumed.run, [later], [first.id], job_id="job-2")
    assert (await store.interrupt(iid)).status != InterruptStatus.PENDING
    assert not [key async for key in store.r.scan_iter(f"{k.prefix}:*:assignee:*")]


# -- who may answer -----------------------------------------------------------------


async def test_only_assignees_and_those_answering_for_them_may_answer(
    store: Store, queue: ArqRedis
) -> None:
    """docs/design.md, "Assignment": a person among the assignees (directly or by a
    group) may; anyone else gets 403 not_assignee, audited, and the interrupt waits."""
    watched = await assigned(store, "user:alice@example.com", watchers=("user:bob",))
    for who in (BOB, CAROL, PLAIN_KEY):
        assert await answer(store, queue, watched, who) == "not_assignee"
    assert (await store.interrupt(watched)).status == InterruptStatus.PENDING
    entries = await audit.read(store.r, store.keys, watched)
    assert [(e["actor"], e["outcome"]) for e in entries] == [
        ("bob@example.com", "not_assignee"),
        ("carol", "not_assignee"),
        ("plain", "not_assignee"),
    ]
    # the token's email is matched without case
    assert await answer(store, queue, watched, ALICE) == "accepted"

    by_group = await assigned(store, "group:finance")
    assert await answer(store, queue, by_group, BOB) == "not_assignee"
    assert await answer(store, queue, by_group, CAROL) == "accepted"

    for who in (SERVICE, auth.OPEN):
        iid = await assigned(store, "user:nobody-here")
        assert await answer(store, queue, iid, who) == "accepted"

    # unassigned: anyone with the resolve scope
    assert await answer(store, queue, await assigned(store), PLAIN_KEY) == "accepted"


async def test_an_action_link_answers_whoever_is_assigned(store: Store, queue: ArqRedis) -> None:
    """An action link is a credential of its own, minted for its recipient."""
    iid = await assigned(store, "user:alice")
    holder = auth.Principal(key_id=None, scopes=frozenset({auth.RESOLVE}), agents=frozenset("a"))
    await channel.answer(
        store,
        queue,
        iid,
        True,
        channel=Channel.LINK,
        principal=holder,
        single_use=channel.SingleUse("nonce-" + iid, 60_000),
    )
    assert (await store.interrupt(iid)).status == InterruptStatus.RESOLVED


# -- reassignment -------------------------------------------------------------------


async def test_reassignment_moves_who_may_answer_and_is_audited_and_emitted(
    store: Store, queue: ArqRedis
) -> None:
    k = store.keys
    run, [iid] = await waiting(store, "a", {"type": "approval"}, assignees=("user:alice",))
    version = await store.interrupts_version()
    view = await assignment.reassign(
        store,
        iid,
        ["user:BOB@example.com", "group:ops"],
        ["user:alice"],
        principal=ASSIGNER,
        comment="alice is away",
    )
    assert view["assignees"] == ["user:bob@example.com", "group:ops"]
    assert view["watchers"] == ["user:alice"]
    assert await store.interrupts_version() != version
    assert await store.r.zscore(k.interrupts_by_assignee("pending", "user:alice"), iid) is None
    h = await store.interrupt(iid)
    for name in h.assignees:
        assert await store.r.zscore(k.interrupts_by_assignee("pending", name), iid) == h.seq

    entry = (await audit.read(store.r, k, iid))[-1]
    assert entry["outcome"] == "assigned" and entry["actor"] == "lead"
    assert entry["previous_assignees"] == ["user:alice"]
    assert entry["assignees"] == ["user:bob@example.com", "group:ops"]
    assert entry["comment"] == "alice is away"
    events = [e for _, e in await store.run_events(run.id) if e["type"] == "interrupt.assigned"]
    assert [e["data"] for e in events] == [
        {
            "previous_assignees": ["user:alice"],
            "interrupt_id": iid,
            "type": "approval",
            "assignees": ["user:bob@example.com", "group:ops"],
            "watchers": ["user:alice"],
            "by": {"actor": "lead", "key_id": "lead", "person": None},
        }
    ]
    # the watcher who was the assignee may no longer answer; the new one may
    assert await answer(store, queue, iid, ALICE) == "not_assignee"
    assert await answer(store, queue, iid, BOB) == "accepted"
    # once answered, it is no longer assigned
    with pytest.raises(errors.AlreadyResolved):
        await assignment.reassign(store, iid, ["user:carol"], None, principal=ASSIGNER)
    assert (await store.interrupt(iid)).assignees == ("user:bob@example.com", "group:ops")


async def test_a_reassignment_comment_with_control_characters_changes_nothing(
    store: Store,
) -> None:
    iid = await assigned(store, "user:alice")
    with pytest.raises(errors.InvalidRequest, match="control characters"):
        await assignment.reassign(
            store, iid, ["user:bob"], None, principal=ASSIGNER, comment="\x07"
        )
    assert (await store.interrupt(iid)).assignees == ("user:alice",)


async def test_bad_names_in_a_reassignment_change_nothing(store: Store) -> None:
    iid = await assigned(store, "user:alice")
    before = await store.r.hgetall(store.keys.interrupt(iid))
    for bad in (["alice"], "user:alice", [""], ["user:" + "x" * 300]):
        with pytest.raises(errors.InvalidRequest):
            await assignment.reassign(store, iid, bad, None, principal=ASSIGNER)
    assert await store.r.hgetall(store.keys.interrupt(iid)) == before
    assert await audit.read(store.r, store.keys, iid) == []
    with pytest.raises(errors.InterruptNotFound):
        await assignment.reassign(store, "no-such-id", ["user:a"], None, principal=ASSIGNER)


async def test_unassigning_opens_it_to_anyone_with_the_resolve_scope(
    store: Store, queue: ArqRedis
) -> None:
    iid = await assigned(store, "user:alice", watchers=("user:bob",))
    view = await assignment.reassign(store, iid, [], [], principal=ASSIGNER)
    assert view["assignees"] == [] and view["watchers"] == []
    assert "assignees" not in await store.r.hgetall(store.keys.interrupt(iid))
    assert await answer(store, queue, iid, PLAIN_KEY) == "accepted"


async def test_an_answer_checked_before_a_reassignment_is_refused_after_it(
    store: Store,
) -> None:
    """The resolve step itself checks the assignees: an answer whose check passed just
    before a reassignment took it from the person is not accepted (docs/design.md,
    "Assignment")."""
    iid = await assigned(store, "user:alice")
    await assignment.reassign(store, iid, ["user:bob"], None, principal=ASSIGNER)
    res = await store.resolve_script(
        iid,
        resolution={"value": True},
        event={},
        response={},
        idempotency=None,
        audit_entry={},
        single_use=None,
        answerer=sorted(assignment.person_names(person("alice").person)),
    )
    assert res == ["not_assignee"]
    assert (await store.interrupt(iid)).status == InterruptStatus.PENDING


# -- listing --------------------------------------------------------------------------


async def _page_all(store: Store, names: frozenset[str], **kw: Any) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.list_interrupts(
            status="pending",
            agent_id=None,
            itype=None,
            thread_id=None,
            run_id=None,
            limit=1,
            cursor=cursor,
            assigned_to=names,
            **kw,
        )
        seen += [item["id"] for item in page.items]
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


async def test_assigned_to_a_person_pages_the_union_of_their_names(store: Store) -> None:
    """Mine directly, mine through a group, mine both ways (listed once), others' and
    unassigned ones (not listed), oldest first, one per page."""
    mine = await assigned(store, "user:alice@example.com")
    others = await assigned(store, "user:bob")
    via_group = await assigned(store, "group:finance", watchers=("user:alice",))
    unassigned = await assigned(store)
    both = await assigned(store, "group:finance", "user:alice")
    watched = await assigned(store, "group:ops", watchers=("user:alice",))
    names = assignment.person_names(ALICE.person)
    assert await _page_all(store, names) == [mine, via_group, both]
    assert await _page_all(store, names, order="desc") == [both, via_group, mine]
    assert unassigned not in await _page_all(store, frozenset({"user:bob", "group:ops"}))
    assert await _page_all(store, frozenset({"user:bob", "group:ops"})) == [others, watched]
    # the other filters still apply
    assert await _page_all(store, names, visible=frozenset({"b"})) == []
    page = await store.list_interrupts(
        status="resolved",
        agent_id=None,
        itype=None,
        thread_id=None,
        run_id=None,
        limit=10,
        cursor=None,
        assigned_to=names,
    )
    assert page.items == []
    got = await store.list_interrupts(
        status="pending",
        agent_id=None,
        itype=None,
        thread_id=None,
        run_id=None,
        limit=10,
        cursor=None,
        assigned_to=frozenset({"user:alice"}),
    )
    assert [i["id"] for i in got.items] == [both]
    assert got.items[0]["assignees"] == ["group:finance", "user:alice"]
    assert loads(await store.r.hget(store.keys.interrupt(both), "assignees")) == [
        "group:finance",
        "user:alice",
    ]


def test_assigned_to_me_names_the_person_and_nobody_for_a_key() -> None:
    assert assignment.listed(ALICE, "me") == frozenset(
        {"user:alice", "user:alice@example.com", "group:finance"}
    )
    assert assignment.listed(PLAIN_KEY, "user:X@Y.org") == frozenset({"user:x@y.org"})
    assert assignment.listed(PLAIN_KEY, None) is None
    for bad in ("bob", "user:", "group: x", "user:\x1c"):
        with pytest.raises(errors.InvalidRequest):
            assignment.listed(PLAIN_KEY, bad)
    assert assignment.listed(PLAIN_KEY, "me") == frozenset()
