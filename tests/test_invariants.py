"""Invariants 1, 2, 3 and 6 of docs/design.md, against real processes and real Redis."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest

from tests import state
from tests.flow import next_interrupt, pending, run_state, start, wait_status
from tests.graphs import count
from tests.harness import Broker

pytestmark = pytest.mark.slow


def _counter(redis_url: str, broker: Broker, what: str, thread_id: str) -> int:
    return count(redis_url, broker.env["BROKER_KEY_PREFIX"], what, thread_id)


def test_twenty_concurrent_answers_have_one_winner(
    api: httpx.Client, broker: Broker, redis_url: str
) -> None:
    run = start(api, "counter", {})
    target = next_interrupt(api, run["run_id"])

    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=broker.url, timeout=30) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        f"/interrupts/{target['id']}/resolve",
                        json={"value": {"n": n}, "resolved_by": f"user-{n}"},
                    )
                    for n in range(20)
                )
            )

    responses = asyncio.run(race())
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * 19
    winner = next(r.json() for r in responses if r.status_code == 200)
    for r in responses:
        if r.status_code == 409:
            err = r.json()["error"]
            assert err["code"] == "already_resolved"
            assert err["resolution"] == winner["resolution"]

    done = wait_status(api, run["run_id"], "succeeded", "failed")
    assert done["status"] == "succeeded"
    assert done["output"]["values"]["answer"] == winner["resolution"]["value"]
    assert _counter(redis_url, broker, "answered", run["thread_id"]) == 1
    assert _counter(redis_url, broker, "after", run["thread_id"]) == 1


def test_idempotency_key_returns_the_original_response(api: httpx.Client) -> None:
    run = start(api, "counter", {})
    target = next_interrupt(api, run["run_id"])
    url = f"/interrupts/{target['id']}/resolve"
    headers = {"Idempotency-Key": "retry-1"}
    first = api.post(url, json={"value": "yes"}, headers=headers)
    assert first.status_code == 200
    again = api.post(url, json={"value": "yes"}, headers=headers)
    assert again.status_code == 200
    assert again.json() == first.json()
    # the same key with another answer is a client bug, not a retry
    other = api.post(url, json={"value": "no"}, headers=headers)
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    # without the key, a second answer is refused with the winner
    late = api.post(url, json={"value": "no"})
    assert late.status_code == 409
    assert late.json()["error"]["resolution"]["value"] == "yes"
    wait_status(api, run["run_id"], "succeeded")


def test_a_start_retried_with_its_idempotency_key_starts_one_run(api: httpx.Client) -> None:
    body = {"agent_id": "counter", "input": {"n": 1}, "metadata": {"try": 1}}
    headers = {"Idempotency-Key": f"start-{uuid.uuid4().hex}"}
    first = api.post("/runs", json=body, headers=headers)
    assert first.status_code == 202
    again = api.post("/runs", json=body, headers=headers)
    assert again.status_code == 202
    assert again.json() == first.json()
    thread = first.json()["thread_id"]
    # the same key with another request is a client bug, not a retry: it changes nothing
    other = api.post("/runs", json={**body, "input": {"n": 2}}, headers=headers)
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    target = next_interrupt(api, first.json()["run_id"])
    assert api.post(f"/interrupts/{target['id']}/resolve", json={"value": 1}).status_code == 200
    wait_status(api, first.json()["run_id"], "succeeded")
    # a replay after the run moved on still gets the original 202, and starts nothing
    late = api.post("/runs", json=body, headers=headers)
    assert late.status_code == 202
    assert late.json() == first.json()
    runs = api.get("/runs", params={"thread_id": thread}).json()["items"]
    assert [r["run_id"] for r in runs] == [first.json()["run_id"]]


def test_a_resume_job_delivered_twice_runs_the_graph_once(
    api: httpx.Client, broker: Broker, redis_url: str
) -> None:
    run = start(api, "counter", {})
    target = next_interrupt(api, run["run_id"])
    r = api.post(f"/interrupts/{target['id']}/resolve", json={"value": "go"})
    assert r.status_code == 200
    wait_status(api, run["run_id"], "succeeded")
    attempts = run_state(api, run["run_id"])["attempts"]

    # deliver the same job again, as a redelivery after a lost acknowledgement would
    async def redeliver() -> None:
        from broker.core.connections import queue_pool
        from broker.core.keys import Keys
        from broker.core.settings import Settings

        # the API's own pool: arq's keys under the deployment's prefix
        prefix = broker.env["BROKER_KEY_PREFIX"]
        pool = queue_pool(Settings(redis_url=redis_url, key_prefix=prefix), Keys(prefix).queue)
        try:
            for n in range(2):
                job = await pool.enqueue_job(
                    "advance", run["run_id"], _job_id=f"advance:{run['run_id']}:again{n}"
                )
                assert job is not None
                assert await job.result(timeout=60) in ("finished", "nothing-to-resume")
        finally:
            await pool.aclose()

    asyncio.run(redeliver())
    after = run_state(api, run["run_id"])
    assert after["status"] == "succeeded"
    assert after["attempts"] == attempts
    assert _counter(redis_url, broker, "answered", run["thread_id"]) == 1
    assert _counter(redis_url, broker, "after", run["thread_id"]) == 1


def _snapshot(redis_url: str, broker: Broker) -> dict[str, Any]:
    """Every key under the broker's prefix with its value, less the audit log (it
    records refused attempts too, by design), to prove nothing changed."""
    return state.snapshot(redis_url, broker.env["BROKER_KEY_PREFIX"], audit=False)


BAD_INPUTS = [
    # (name, method, path template, kwargs, status, code)
    (
        "malformed json",
        "post",
        "/interrupts/{iid}/resolve",
        {"content": b'{"value": ', "headers": {"content-type": "application/json"}},
        400,
        "invalid_json",
    ),
    (
        "not an object",
        "post",
        "/interrupts/{iid}/resolve",
        {"content": b"[1, 2]", "headers": {"content-type": "application/json"}},
        422,
        "invalid_request",
    ),
    (
        "missing value",
        "post",
        "/interrupts/{iid}/resolve",
        {"json": {"resolved_by": "x"}},
        422,
        "invalid_request",
    ),
    (
        "unknown field",
        "post",
        "/interrupts/{iid}/resolve",
        {"json": {"value": 1, "valu": 2}},
        422,
        "invalid_request",
    ),
    (
        "wrong content type",
        "post",
        "/interrupts/{iid}/resolve",
        {"content": b'{"value": 1}', "headers": {"content-type": "text/plain"}},
        415,
        "unsupported_media_type",
    ),
    (
        "oversized value",
        "post",
        "/interrupts/{iid}/resolve",
        {"json": {"value": "x" * (70 * 1024)}},
        413,
        "payload_too_large",
    ),
    (
        "unknown interrupt",
        "post",
        "/interrupts/nope/resolve",
        {"json": {"value": 1}},
        404,
        "interrupt_not_found",
    ),
    ("unknown interrupt get", "get", "/interrupts/nope", {}, 404, "interrupt_not_found"),
    (
        "unknown agent",
        "post",
        "/runs",
        {"json": {"agent_id": "nobody", "input": {}}},
        404,
        "agent_not_found",
    ),
    (
        "run body wrong type",
        "post",
        "/runs",
        {"json": {"agent_id": 5, "input": {}}},
        422,
        "invalid_request",
    ),
    (
        "bad thread id",
        "post",
        "/runs",
        {"json": {"agent_id": "counter", "thread_id": "a b"}},
        422,
        "invalid_request",
    ),
    ("unknown run", "get", "/runs/nope", {}, 404, "run_not_found"),
    ("cancel unknown run", "post", "/runs/nope/cancel", {}, 404, "run_not_found"),
    ("bad cursor", "get", "/interrupts?cursor=%%%", {}, 400, "invalid_cursor"),
    ("bad status filter", "get", "/interrupts?status=maybe", {}, 422, "invalid_request"),
    ("limit too large", "get", "/interrupts?limit=100000", {}, 422, "invalid_request"),
]


@pytest.fixture(scope="module")
def answered(broker: Broker) -> dict[str, Any]:
    """One run whose interrupt was answered, and one still waiting."""
    with httpx.Client(base_url=broker.url, timeout=30) as api:
        done = start(api, "counter", {})
        first = next_interrupt(api, done["run_id"])
        assert api.post(f"/interrupts/{first['id']}/resolve", json={"value": 1}).status_code == 200
        wait_status(api, done["run_id"], "succeeded")
        waiting = start(api, "counter", {})
        open_one = next_interrupt(api, waiting["run_id"])
        return {"resolved": first, "pending": open_one, "run": waiting}


@pytest.mark.parametrize(
    ("name", "method", "path", "kwargs", "status", "code"),
    BAD_INPUTS,
    ids=[b[0] for b in BAD_INPUTS],
)
def test_bad_input_gets_a_4xx_and_changes_nothing(
    api: httpx.Client,
    broker: Broker,
    redis_url: str,
    answered: dict[str, Any],
    name: str,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    code: str,
) -> None:
    before = _snapshot(redis_url, broker)
    r = api.request(method, path.format(iid=answered["pending"]["id"]), **kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert _snapshot(redis_url, broker) == before
    assert api.get(f"/interrupts/{answered['pending']['id']}").json()["status"] == "pending"
    if path == "/interrupts/{iid}/resolve":
        trail = api.get(f"/interrupts/{answered['pending']['id']}/audit").json()["items"]
        assert trail[-1]["outcome"] == code
        assert trail[-1]["channel"] == "rest"


def test_answering_an_answered_interrupt_is_409_and_changes_nothing(
    api: httpx.Client, broker: Broker, redis_url: str, answered: dict[str, Any]
) -> None:
    before = _snapshot(redis_url, broker)
    r = api.post(f"/interrupts/{answered['resolved']['id']}/resolve", json={"value": 2})
    assert r.status_code == 409
    err = r.json()["error"]
    assert err["code"] == "already_resolved"
    assert err["resolution"]["value"] == 1
    assert _snapshot(redis_url, broker) == before


def test_json_error_shape_for_unknown_routes(api: httpx.Client) -> None:
    r = api.get("/nowhere")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    assert json.loads(r.text)["error"]["message"]


def test_listing_pages_by_cursor_and_answers_304_when_unchanged(api: httpx.Client) -> None:
    # one after another, so the interrupts are created in this order
    runs, ids = [], []
    for _ in range(5):
        runs.append(start(api, "counter", {}))
        ids.append(next_interrupt(api, runs[-1]["run_id"])["id"])
    agent_items: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"agent_id": "counter", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/interrupts", params=params).json()
        agent_items += [i["id"] for i in page["items"]]
        assert len(page["items"]) <= 2
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [i for i in agent_items if i in ids] == ids  # oldest first, none twice
    assert len(agent_items) == len(set(agent_items))

    first = api.get("/interrupts", params={"agent_id": "counter"})
    etag = first.headers["etag"]
    cached = api.get("/interrupts", params={"agent_id": "counter"}, headers={"If-None-Match": etag})
    assert cached.status_code == 304
    assert api.post(f"/interrupts/{ids[0]}/resolve", json={"value": 1}).status_code == 200
    changed = api.get(
        "/interrupts", params={"agent_id": "counter"}, headers={"If-None-Match": etag}
    )
    assert changed.status_code == 200
    assert ids[0] not in [i["id"] for i in changed.json()["items"]]
    for rid in [r["run_id"] for r in runs[1:]]:
        assert api.post(f"/runs/{rid}/cancel").status_code == 200
    for iid in ids[1:]:
        assert api.get(f"/interrupts/{iid}").json()["status"] == "cancelled"
    assert pending(api, runs[1]["run_id"]) == []
