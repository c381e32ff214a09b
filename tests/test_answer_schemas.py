"""Answers are checked before anything is queued: a declared JSON Schema, and the
HumanInTheLoopMiddleware contract. A bad answer is 422 naming the failing path, and the
interrupt stays pending.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import redis

from broker.core import errors, schemas
from tests.flow import next_interrupt, start, wait_status
from tests.graphs import PROFILE_SCHEMA
from tests.harness import Broker

HITL = {
    "action_requests": [
        {"name": "send_email", "args": {"to": "a@x.test"}},
        {"name": "delete_file", "args": {"path": "/tmp/x"}},
    ],
    "review_configs": [
        {"action_name": "send_email", "allowed_decisions": ["approve", "edit", "reject"]},
        {"action_name": "delete_file", "allowed_decisions": ["approve", "reject"]},
    ],
}
EDIT = {"type": "edit", "edited_action": {"name": "send_email", "args": {"to": "b@x.test"}}}

# (case, interrupt value, response_schema, answer, failing path or None when valid)
MATRIX: list[tuple[str, Any, Any, Any, str | None]] = [
    ("valid", {}, PROFILE_SCHEMA, {"name": "Ada", "age": 36}, None),
    ("valid, optional field left out", {}, PROFILE_SCHEMA, {"name": "Ada"}, None),
    ("wrong type", {}, PROFILE_SCHEMA, {"name": "Ada", "age": "old"}, "/age"),
    ("wrong type at the top", {}, PROFILE_SCHEMA, "Ada", "/"),
    ("missing field", {}, PROFILE_SCHEMA, {"age": 3}, "/"),
    ("extra field where forbidden", {}, PROFILE_SCHEMA, {"name": "A", "nick": "a"}, "/"),
    ("below the minimum", {}, PROFILE_SCHEMA, {"name": "A", "age": -1}, "/age"),
    (
        "schema in the value",
        {"responseSchema": PROFILE_SCHEMA},
        None,
        {"name": "A", "age": 1.5},
        "/age",
    ),
    ("valid HITL", HITL, None, {"decisions": [EDIT, {"type": "approve"}]}, None),
    ("HITL decision count mismatch", HITL, None, {"decisions": [EDIT]}, "/decisions"),
    (
        "HITL disallowed decision",
        HITL,
        None,
        {"decisions": [{"type": "approve"}, EDIT]},
        "/decisions/1/type",
    ),
    (
        "HITL unknown decision",
        HITL,
        None,
        {"decisions": [{"type": "maybe"}, {"type": "approve"}]},
        "/decisions/0/type",
    ),
    (
        "HITL edit without its action",
        HITL,
        None,
        {"decisions": [{"type": "edit"}, {"type": "approve"}]},
        "/decisions/0/edited_action",
    ),
    ("HITL not decisions", HITL, None, {"approve": True}, "/"),
    ("no contract: anything goes", {"type": "ask"}, None, ["any", {"thing": 1}], None),
]


@pytest.mark.parametrize(
    ("case", "value", "schema", "answer", "path"), MATRIX, ids=[m[0] for m in MATRIX]
)
def test_schema_matrix(case: str, value: Any, schema: Any, answer: Any, path: str | None) -> None:
    if path is None:
        schemas.check_answer(value, schema, answer)
        return
    with pytest.raises(errors.InvalidAnswer) as info:
        schemas.check_answer(value, schema, answer)
    assert info.value.details["path"] == path
    assert info.value.message.startswith(f"answer at {path}: ")
    assert info.value.status_code == 422


def test_a_broken_schema_is_ignored_rather_than_refusing_every_answer() -> None:
    schemas.check_answer({}, {"type": "no-such-type"}, 1)


# End to end: the real API, the real worker, LangGraph's interrupt(response_schema=...)


def _state(redis_url: str, broker: Broker, interrupt_id: str) -> dict[bytes, bytes]:
    client = redis.Redis.from_url(redis_url)
    try:
        return dict(client.hgetall(f"{broker.env['BROKER_KEY_PREFIX']}:interrupt:{interrupt_id}"))
    finally:
        client.close()


@pytest.mark.slow
@pytest.mark.parametrize("agent", ["typed", "declared"])
def test_a_bad_answer_is_422_with_its_path_and_the_interrupt_stays_pending(
    api: httpx.Client, broker: Broker, redis_url: str, agent: str
) -> None:
    run = start(api, agent, {})
    target = next_interrupt(api, run["run_id"])
    assert target["response_schema"] == PROFILE_SCHEMA
    before = _state(redis_url, broker, target["id"])
    url = f"/interrupts/{target['id']}/resolve"
    for bad, path in [
        ({"name": 7}, "/name"),
        ({"age": 3}, "/"),
        ({"name": "Ada", "extra": True}, "/"),
    ]:
        r = api.post(url, json={"value": bad})
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert (error["code"], error["path"]) == ("invalid_answer", path)
        assert _state(redis_url, broker, target["id"]) == before
    assert api.get(f"/runs/{run['run_id']}").json()["status"] == "interrupted"
    outcomes = [e["outcome"] for e in api.get(f"{url[:-8]}/audit").json()["items"]]
    assert outcomes == ["invalid_answer"] * 3

    good = {"name": "Ada", "age": 36}
    assert api.post(url, json={"value": good}).status_code == 200
    done = wait_status(api, run["run_id"], "succeeded", "failed")
    assert done["output"]["values"]["answer"] == good


@pytest.mark.slow
def test_hitl_contract_is_checked_at_the_api(api: httpx.Client) -> None:
    run = start(
        api,
        "tool_approval",
        {"messages": [{"role": "user", "content": "Send an email to bob@example.com about it"}]},
    )
    review = next_interrupt(api, run["run_id"])
    url = f"/interrupts/{review['id']}/resolve"
    two = {"decisions": [{"type": "approve"}, {"type": "approve"}]}
    r = api.post(url, json={"value": two})
    assert (r.status_code, r.json()["error"]["path"]) == (422, "/decisions")
    respond = {"decisions": [{"type": "respond", "message": "done"}]}
    r = api.post(url, json={"value": respond})
    assert (r.status_code, r.json()["error"]["path"]) == (422, "/decisions/0/type")
    assert api.get(f"/interrupts/{review['id']}").json()["status"] == "pending"
    assert api.post(url, json={"value": {"decisions": [{"type": "approve"}]}}).status_code == 200
    assert wait_status(api, run["run_id"], "succeeded", "failed")["status"] == "succeeded"
