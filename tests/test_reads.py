"""The store's reads: a page of an index and a run cost what they return, and paging by
cursor gives every matching record once, in order (docs/design.md, "Redis": "Paging is
by cursor: a page costs O(page)"; "no hot path reads a run's past interrupts").

Costs are counted in Redis commands (the server's command statistics, which count the
commands scripts run too) on a server of the test's own, never timed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.api.responses import JSON
from broker.core.codec import iso, now_ms
from broker.core.records import RunStatus
from broker.core.settings import Settings as BrokerSettings
from broker.core.store import Attempt, Store, views
from tests.servers import RedisServer, commands_run
from tests.stored import raised, waiting


@pytest.fixture
async def own(tmp_path: Path) -> AsyncIterator[Store]:
    """A store on a Redis server of its own: its command statistics are this test's."""
    server = RedisServer(tmp_path).start()
    r = aioredis.Redis.from_url(server.url, decode_responses=True)
    try:
        yield Store(r, BrokerSettings(key_prefix="reads"))
    finally:
        await r.aclose()
        server.stop()


async def _cost(r: aioredis.Redis, read: Any) -> tuple[int, Any]:
    """(commands ``read`` made the server run, what it returned)."""
    before = await commands_run(r)
    got = await read
    return await commands_run(r) - before, got


async def _with_history(store: Store, past: int) -> str:
    """A run that raised ``past`` interrupts, each answered and applied, and one open."""
    run = await store.create_run("a", None, {}, {})
    job = "job-0"
    begun = await store.begin_attempt(run.id, "", job)
    for n in range(past + 1):
        assert isinstance(begun, Attempt), begun
        asked = raised(begun.run, {"type": "ask", "n": n})
        await store.record_interrupts(begun.run, [asked], [a.id for a in begun.answers], job_id=job)
        if n == past:
            break
        resolution = {"value": n, "resolved_by": "u", "channel": "rest", "key_id": None}
        outcome = await store.resolve_script(
            asked.id,
            resolution=resolution,
            event={"interrupt_id": asked.id},
            response={},
            idempotency=None,
            audit_entry={"actor": "u"},
            single_use=None,
        )
        assert outcome[0] == "ok", outcome
        job = f"job-{n + 1}"
        begun = await store.begin_attempt(run.id, "", job)
    return run.id


async def test_reading_a_run_costs_its_open_interrupts_never_its_past(own: Store) -> None:
    short, long = await _with_history(own, 0), await _with_history(own, 300)
    await own.get_run(short)  # the script is loaded once, by the first call
    short_cost, short_view = await _cost(own.r, own.get_run(short))
    long_cost, long_view = await _cost(own.r, own.get_run(long))
    assert len(await own.r.zrange(own.keys.run_interrupts(long), 0, -1)) == 301
    assert len(short_view["pending_interrupts"]) == len(long_view["pending_interrupts"]) == 1
    assert long_view["status"] == RunStatus.INTERRUPTED.value
    assert long_cost == short_cost, (short_cost, long_cost)


async def test_a_page_costs_what_it_returns_wherever_it_starts(own: Store) -> None:
    for n in range(300):
        await waiting(own, "ab"[n % 2], {"type": "ask", "n": n})

    def page(cursor: str | None, limit: int = 10, **filters: Any) -> Any:
        args: dict[str, Any] = dict(agent_id=None, itype=None, thread_id=None, run_id=None)
        return own.list_interrupts(status="pending", limit=limit, cursor=cursor, **(args | filters))

    await page(None)  # the script is loaded once, by the first call
    first_cost, first = await _cost(own.r, page(None))
    middle = str(
        int(
            (
                await own.r.zrange(
                    own.keys.interrupts_by_status("pending"), 150, 150, withscores=True
                )
            )[0][1]
        )
    )
    deep_cost, deep = await _cost(own.r, page(middle))
    assert len(first.items) == len(deep.items) == 10
    assert deep.items[0]["value"]["n"] == 151
    assert first_cost == deep_cost
    # a page of 10 reads the 11 records it looks at, not the 300 in the index
    assert first_cost < 20, first_cost
    wide_cost, wide = await _cost(own.r, page(None, limit=40))
    assert len(wide.items) == 40 and wide_cost > first_cost


async def test_a_page_assigned_to_a_person_costs_the_page_times_their_names(own: Store) -> None:
    """docs/design.md, "Assignment": the union of a person's assignee indexes is paged
    at O(page x names), however many interrupts are pending."""
    names = ("user:alice", "group:finance", "user:bob", "group:ops")
    for n in range(300):
        await waiting(own, "a", {"type": "ask", "n": n}, assignees=(names[n % 4],))

    def page(cursor: str | None) -> Any:
        return own.list_interrupts(
            status="pending",
            agent_id=None,
            itype=None,
            thread_id=None,
            run_id=None,
            limit=10,
            cursor=cursor,
            assigned_to=frozenset(names[:2]),
        )

    await page(None)
    first_cost, first = await _cost(own.r, page(None))
    middle = await own.r.zrange(own.keys.interrupts_by_status("pending"), 150, 150, withscores=True)
    deep_cost, deep = await _cost(own.r, page(str(int(middle[0][1]))))
    assert [i["value"]["n"] % 4 for i in first.items] == [0, 1] * 5
    assert [i["value"]["n"] for i in deep.items][:2] == [152, 153]
    assert first_cost == deep_cost
    # two indexes of 11 entries each and the 11 records looked at, not the 150 matching
    assert first_cost < 40, first_cost


async def test_recording_an_unassigned_interrupt_costs_nothing_more(own: Store) -> None:
    """An interrupt without assignees makes no command for them; one with assignees
    makes one per assignee (its index entry)."""

    async def record(**extra: Any) -> int:
        run = await own.create_run("a", None, {}, {})
        begun = await own.begin_attempt(run.id, "", "job-1")
        assert isinstance(begun, Attempt)
        asked = [raised(begun.run, {"type": "ask"}, **extra)]
        cost, _ = await _cost(own.r, own.record_interrupts(begun.run, asked, [], job_id="job-1"))
        return cost

    await record()  # the script is loaded once, by the first call
    plain = await record()
    assert await record(assignees=("user:a", "group:b"), watchers=("user:c",)) == plain + 2


async def test_paging_by_cursor_gives_each_match_once_in_order(store: Store) -> None:
    made: list[tuple[str, str, str]] = []  # (interrupt id, agent, type) oldest first
    for n in range(45):
        agent, itype = "abc"[n % 3], ("ask", "approval")[n % 2]
        _, [iid] = await waiting(store, agent, {"type": itype, "n": n})
        made.append((iid, agent, itype))

    async def walk(limit: int, order: str, **kw: Any) -> list[str]:
        seen: list[str] = []
        cursor = None
        for _ in range(200):
            args: dict[str, Any] = dict(agent_id=None, itype=None, thread_id=None, run_id=None)
            got = await store.list_interrupts(
                status="pending", limit=limit, cursor=cursor, order=order, **(args | kw)
            )
            assert len(got.items) <= limit
            seen += [i["id"] for i in got.items]
            cursor = got.next_cursor
            if cursor is None:
                return seen
        raise AssertionError("paging never ended")

    ours = [iid for iid, _, _ in made]
    everything = [i for i in await walk(7, "asc") if i in set(ours)]
    assert everything == ours
    assert [i for i in await walk(4, "desc") if i in set(ours)] == ours[::-1]
    # the agent index covers the agent; the type is checked record by record
    both = [iid for iid, agent, itype in made if agent == "b" and itype == "ask"]
    assert await walk(2, "asc", agent_id="b", itype="ask") == both
    # a key limited to some agents sees only theirs
    theirs = [iid for iid, agent, _ in made if agent in ("a", "c")]
    limited = await walk(5, "asc", visible=frozenset({"a", "c"}))
    assert [i for i in limited if i in set(ours)] == theirs
    assert await walk(5, "asc", agent_id="b", visible=frozenset({"a"})) == []


async def test_a_filter_no_record_matches_stops_after_a_bounded_scan(store: Store) -> None:
    for n in range(230):
        await waiting(store, "a", {"type": "ask", "n": n})
    got = await store.list_interrupts(
        status="pending",
        agent_id="a",
        itype="nothing-has-this-type",
        thread_id=None,
        run_id=None,
        limit=5,
        cursor=None,
    )
    # 200 records looked at (max(limit * 20, 200)), none kept: the cursor goes on from there
    assert got.items == [] and got.next_cursor is not None
    rest = await store.list_interrupts(
        status="pending",
        agent_id="a",
        itype="nothing-has-this-type",
        thread_id=None,
        run_id=None,
        limit=5,
        cursor=got.next_cursor,
    )
    assert rest.items == [] and rest.next_cursor is None


async def test_a_page_of_runs_names_each_runs_pending_interrupts(store: Store) -> None:
    run, ids = await waiting(store, "a", {"type": "ask"}, {"type": "approval"})
    other, [gone] = await waiting(store, "a", {"type": "ask"})
    await store.stop_run(other.id, RunStatus.CANCELLED)
    page = await store.list_runs(status=None, agent_id="a", thread_id=None, limit=10, cursor=None)
    by_id = {item["run_id"]: item for item in page.items}
    assert by_id[run.id]["pending_interrupts"] == ids
    assert by_id[other.id]["pending_interrupts"] == []
    assert [item["run_id"] for item in page.items][:2] == [other.id, run.id]  # newest first
    assert gone not in by_id[other.id]["pending_interrupts"]


# until 2100 (codec.iso divides by 1000 in floating point, which is a microsecond off
# for some instants some centuries on; a page's timestamps stay exact)
@given(st.integers(min_value=0, max_value=4_102_444_800_000))
@settings(max_examples=1000, derandomize=True, database=None)
def test_a_pages_timestamps_read_as_every_other_timestamp(ms: int) -> None:
    assert views._iso(ms) == iso(ms)


async def test_a_page_shows_each_interrupt_as_reading_it_alone_does(store: Store) -> None:
    review = {
        "action_requests": [{"name": "send", "args": {"to": "x"}, "description": "Send"}],
        "review_configs": [{"action_name": "send", "allowed_decisions": ["approve"]}],
    }
    later = now_ms() + 3_600_000
    _, ids = await waiting(store, "a", {"type": "ask", "content": "é ✓"}, review, [1, None])
    await waiting(
        store,
        "a",
        {"slots": [{"label": "Mon 9:00", "iso": "2030-01-07T09:00:00Z"}]},
        expires_at_ms=later,
        on_expire="default",
        expiry_default={"day": "mon"},
        response_schema={"type": "object"},
        assignees=("user:alice@example.com", "group:finance"),
        watchers=("user:bob",),
    )
    resolution = {"value": True, "resolved_by": "u", "channel": "rest", "key_id": "k"}
    await store.resolve_script(
        ids[0],
        resolution=resolution,
        event={"interrupt_id": ids[0]},
        response={},
        idempotency=None,
        audit_entry={"actor": "u"},
        single_use=None,
    )
    shown = []
    for status in ("pending", "resolved"):
        page = await store.list_interrupts(
            status=status,
            agent_id=None,
            itype=None,
            thread_id=None,
            run_id=None,
            limit=50,
            cursor=None,
        )
        shown += page.items
    assert len(shown) == 4
    kinds = set()
    for item in shown:
        alone = (await store.interrupt(item["id"])).view()
        assert item == alone
        kinds.add(item["kind"])
    assert kinds == {"ask", "review", "json", "slots"}


def test_a_body_orjson_refuses_is_still_written() -> None:
    # values a graph may put in an interrupt: an integer past 64 bits, a lone surrogate
    body = {"items": [{"value": {"n": 2**70, "s": "a\ud800b", "t": "é"}}], "next_cursor": None}
    assert json.loads(JSON(body).body) == body
    assert json.loads(JSON({"ok": 1.5, "t": "é"}).body) == {"ok": 1.5, "t": "é"}
