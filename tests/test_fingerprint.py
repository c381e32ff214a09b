"""Answers bound to what was shown (docs/design.md, "Answers bound to what was shown"):
each interrupt has a fingerprint of its value, its run and LangGraph's interrupt id; an
answer that names another one is refused with 412 and changes nothing, checked before
the resolve step and inside it; and a question raised again with other arguments is a
new record that needs a new answer, never the old one."""

from __future__ import annotations

from typing import Any

import httpx
import redis

from broker.core import audit, fingerprint
from broker.core.records import InterruptStatus, RunStatus
from broker.core.store import Attempt, Store
from tests.flow import answer, start, wait_status
from tests.graphs import recipient_key
from tests.harness import Broker, wait_until
from tests.stored import raised, waiting


def test_the_fingerprint_is_of_the_value_run_and_interrupt_not_of_key_order() -> None:
    fp = fingerprint.of("run-1", "lg-1", {"to": "a@example.com", "n": [1, 2]})
    assert fp == fingerprint.of("run-1", "lg-1", {"n": [1, 2], "to": "a@example.com"})
    assert len(fp) == 32 and fp.isascii()
    others = {
        fingerprint.of("run-2", "lg-1", {"to": "a@example.com", "n": [1, 2]}),
        fingerprint.of("run-1", "lg-2", {"to": "a@example.com", "n": [1, 2]}),
        fingerprint.of("run-1", "lg-1", {"to": "b@example.com", "n": [1, 2]}),
        fingerprint.of("run-1", "lg-1", {"to": "a@example.com", "n": [2, 1]}),
    }
    assert fp not in others and len(others) == 4


def test_if_match_names_quoted_bare_or_any() -> None:
    assert fingerprint.tags(None) is None
    assert fingerprint.tags("*") is None
    assert fingerprint.tags('"abc"') == ["abc"]
    assert fingerprint.tags("abc") == ["abc"]
    assert fingerprint.tags('"a", "b"') == ["a", "b"]
    # If-Match compares strongly: a weak tag names nothing, so it matches nothing
    assert fingerprint.tags('W/"abc"') == []
    assert not fingerprint.holds([], "abc")
    assert fingerprint.holds(["x", "abc"], "abc")
    # a record made before fingerprints matches only *
    assert not fingerprint.holds(["abc"], "")
    assert fingerprint.holds(None, "")


async def _resolve(store: Store, iid: str, fp: str | None) -> list[Any]:
    return await store.resolve_script(
        iid,
        resolution={"value": True, "resolved_by": "u", "channel": "rest", "key_id": None},
        event={"interrupt_id": iid},
        response={},
        idempotency=None,
        audit_entry={"actor": "u", "outcome": "accepted"},
        single_use=None,
        fingerprint=fp,
    )


async def test_the_resolve_step_refuses_another_fingerprint_atomically(store: Store) -> None:
    _, [iid] = await waiting(store, "a", {"type": "approval", "to": "a@example.com"})
    h = await store.interrupt(iid)
    assert h.fingerprint and h.view()["fingerprint"] == h.fingerprint

    assert await _resolve(store, iid, "not-the-one") == ["fingerprint_mismatch", h.fingerprint]
    assert (await store.interrupt(iid)).status == InterruptStatus.PENDING
    assert await audit.read(store.r, store.keys, iid) == []

    assert (await _resolve(store, iid, h.fingerprint))[0] == "ok"
    assert (await store.interrupt(iid)).status == InterruptStatus.RESOLVED


async def _attempt(store: Store, run_id: str, job: str) -> Attempt:
    begun = await store.begin_attempt(run_id, "", job)
    assert isinstance(begun, Attempt), begun
    return begun


async def test_raised_again_alike_keeps_its_record_otherwise_is_a_new_one(store: Store) -> None:
    run = await store.create_run("a", None, {}, {})
    begun = await _attempt(store, run.id, "job-1")
    first = raised(begun.run, {"type": "approval", "to": "a@example.com"}, lg_id="lg-x")
    [old] = await store.record_interrupts(begun.run, [first], [], job_id="job-1")

    # the node ran again from the same checkpoint (a recovery): the same question keeps
    # its record, whatever record id the new attempt made up for it
    await store.r.hset(store.keys.run(run.id), mapping={"status": "running", "job_id": "job-2"})
    again = raised(begun.run, {"to": "a@example.com", "type": "approval"}, lg_id="lg-x")
    assert again.fingerprint == first.fingerprint
    assert await store.record_interrupts(begun.run, [again], [], job_id="job-2") == []

    # it ran again and asked something else under the same LangGraph id: the old record
    # closes and the question is a new record with its own fingerprint
    await store.r.hset(store.keys.run(run.id), mapping={"status": "running", "job_id": "job-3"})
    changed = raised(begun.run, {"type": "approval", "to": "mallory@example.com"}, lg_id="lg-x")
    [new] = await store.record_interrupts(begun.run, [changed], [], job_id="job-3")
    assert new != old
    gone, now = await store.interrupt(old), await store.interrupt(new)
    assert gone.status == InterruptStatus.CANCELLED
    assert now.status == InterruptStatus.PENDING and now.fingerprint != gone.fingerprint
    events = [e for _, e in await store.run_events(run.id)]
    cancelled = [e for e in events if e["type"] == "interrupt.cancelled"]
    assert cancelled[-1]["data"]["replaced_by"] == new
    created = [e for e in events if e["type"] == "interrupt.created"]
    assert created[-1]["data"]["fingerprint"] == now.fingerprint


async def test_an_answer_to_the_old_question_is_never_applied_to_the_new_one(
    store: Store,
) -> None:
    # the answer arrives while the run is running again (another branch's answer is
    # being applied), and the node then asks something else under the same id
    run = await store.create_run("a", None, {}, {})
    begun = await _attempt(store, run.id, "job-1")
    other = raised(begun.run, {"type": "approval", "branch": "other"}, lg_id="lg-other")
    asked = raised(begun.run, {"type": "approval", "to": "a@example.com"}, lg_id="lg-x")
    other_id, old = await store.record_interrupts(begun.run, [other, asked], [], job_id="job-1")
    assert (await _resolve(store, other_id, None))[0] == "ok"
    begun = await _attempt(store, run.id, "job-2")
    assert [h.id for h in begun.answers] == [other_id]
    assert (await _resolve(store, old, None))[0] == "ok"  # answered while it runs

    changed = raised(begun.run, {"type": "approval", "to": "mallory@example.com"}, lg_id="lg-x")
    [new] = await store.record_interrupts(begun.run, [changed], [other_id], job_id="job-2")
    assert (await store.interrupt(old)).status == InterruptStatus.CANCELLED
    # nothing is due: the old answer is not handed to the graph for the new question
    assert await store.begin_attempt(run.id, "", "job-3") == "idle"
    assert (await store.run(run.id)).status == RunStatus.INTERRUPTED
    assert (await store.interrupt(new)).status == InterruptStatus.PENDING


# -- over HTTP, with a real API and worker ----------------------------------------------


def _resolve_http(api: httpx.Client, iid: str, if_match: str | None) -> httpx.Response:
    headers = {"If-Match": if_match} if if_match is not None else {}
    return api.post(f"/interrupts/{iid}/resolve", json={"value": True}, headers=headers)


def test_get_returns_the_fingerprint_as_etag_and_resolve_checks_if_match(
    api: httpx.Client,
) -> None:
    runs = [start(api, "counter", {}) for _ in range(3)]
    ids = [wait_status(api, r["run_id"], "interrupted")["pending_interrupts"][0] for r in runs]
    got = api.get(f"/interrupts/{ids[0]}")
    fp = got.json()["fingerprint"]
    assert fp and got.headers["ETag"] == f'"{fp}"'

    stale = _resolve_http(api, ids[0], '"an-older-version"')
    assert stale.status_code == 412, stale.text
    error = stale.json()["error"]
    assert error["code"] == "fingerprint_mismatch" and error["fingerprint"] == fp
    # nothing changed, and the refusal is in the audit log
    assert api.get(f"/interrupts/{ids[0]}").json()["status"] == "pending"
    trail = api.get(f"/interrupts/{ids[0]}/audit").json()["items"]
    assert [e["outcome"] for e in trail] == ["fingerprint_mismatch"]
    weak = _resolve_http(api, ids[0], f'W/"{fp}"')
    assert weak.status_code == 412, weak.text

    assert _resolve_http(api, ids[0], f'"{fp}"').status_code == 200
    bare = api.get(f"/interrupts/{ids[1]}").json()["fingerprint"]
    assert _resolve_http(api, ids[1], bare).status_code == 200
    assert _resolve_http(api, ids[2], "*").status_code == 200
    for r in runs:
        wait_status(api, r["run_id"], "succeeded")


def test_a_question_asked_again_with_other_arguments_needs_a_new_answer(
    api: httpx.Client, broker: Broker
) -> None:
    run = start(api, "shifting", {})
    state = wait_status(api, run["run_id"], "interrupted", pending=2)
    shown = {i["value"].get("to", "a"): i for i in _views(api, state["pending_interrupts"])}
    old = shown["person1@example.com"]

    # answering the other branch runs the step again; the shifting node now asks about
    # another recipient under the same LangGraph interrupt id
    rdb = redis.Redis.from_url(broker.env["REDIS_URL"])
    rdb.set(recipient_key(broker.env["BROKER_KEY_PREFIX"], run["thread_id"]), "person2@example.com")
    rdb.close()
    answer(api, shown["a"]["id"], True)

    def replaced() -> dict[str, Any] | None:
        items = api.get("/interrupts", params={"run_id": run["run_id"]}).json()["items"]
        return items[0] if items and items[0]["id"] != old["id"] else None

    new = wait_until(replaced, "the changed question to be a new record")
    assert new["value"]["to"] == "person2@example.com"
    assert new["interrupt_id"] == old["interrupt_id"]
    assert new["fingerprint"] != old["fingerprint"]
    assert api.get(f"/interrupts/{old['id']}").json()["status"] == "cancelled"

    # the answer given to what was shown first is refused, whichever way it is sent
    closed = _resolve_http(api, old["id"], None)
    assert closed.status_code == 409, closed.text
    stale = _resolve_http(api, new["id"], f'"{old["fingerprint"]}"')
    assert stale.status_code == 412, stale.text

    answer(api, new["id"], False)
    done = wait_status(api, run["run_id"], "succeeded")
    # the graph got the answer given to the question it asked, and no other
    assert done["output"]["values"]["answers"] == {
        "a": True,
        "shifting": {"answer": False, "to": "person2@example.com"},
    }


def _views(api: httpx.Client, ids: list[str]) -> list[dict[str, Any]]:
    return [api.get(f"/interrupts/{i}").json() for i in ids]
