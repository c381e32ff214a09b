"""The undo window with real API and worker processes (docs/design.md, "Undo window"):
an answer not withdrawn resumes its run exactly once, after the window; one withdrawn
within it never does; a worker SIGKILLed during the window, or the window's job lost,
still gives exactly one resume.

The test graph (tests/graphs.py ``counter``) counts in Redis each time the node after
its question runs, so a second resume would show.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from standardwebhooks import Webhook

from broker.core import jobs, signing
from broker.core.keys import Keys
from tests.agui_calls import agui, run_input
from tests.flow import answer, next_interrupt, start, wait_status
from tests.graphs import count
from tests.harness import Broker, delete_prefix, wait_until
from tests.receiver import Receiver, running

pytestmark = pytest.mark.slow

WINDOW_S = 3
SECRET = signing.new_secret()
HOOKED = ["interrupt.accepted", "interrupt.withdrawn", "interrupt.resolved"]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with running() as r:
        yield r


@pytest.fixture
def broker(redis_url: str, tmp_path: Path, receiver: Receiver) -> Iterator[Broker]:
    hook = {"id": "undo", "url": f"{receiver.url}/ok/undo", "secret": SECRET, "events": HOOKED}
    b = Broker(
        redis_url,
        f"ibu{uuid.uuid4().hex[:10]}",
        tmp_path,
        BROKER_UNDO=json.dumps(
            [{"agent": "counter", "undo_s": WINDOW_S}, {"agent": "naming", "undo_s": 60}]
        ),
        BROKER_RECONCILE_INTERVAL_S="1",
        BROKER_RECONCILE_GRACE_S="1",
        BROKER_WEBHOOK_ALLOW_PRIVATE="1",
        BROKER_WEBHOOKS=json.dumps([hook]),
    )
    try:
        b.start_worker()
        b.start_worker()
        b.start_api()
        b.wait_ready()
        yield b
    finally:
        b.stop()
        delete_prefix(redis_url, b.env["BROKER_KEY_PREFIX"])


@pytest.fixture
def api(broker: Broker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=broker.url, timeout=30) as c:
        yield c


def _events(api: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    """The run's events to its end, over SSE."""
    out = []
    with api.stream("GET", f"/runs/{run_id}/events") as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                out.append(json.loads(line.removeprefix("data: ")))
    return out


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def _counts(broker: Broker, thread_id: str) -> tuple[int, int]:
    url, prefix = broker.env["REDIS_URL"], broker.env["BROKER_KEY_PREFIX"]
    return count(url, prefix, "answered", thread_id), count(url, prefix, "after", thread_id)


def _held(api: httpx.Client) -> tuple[dict[str, Any], dict[str, Any]]:
    run = start(api, "counter", {})
    question = next_interrupt(api, run["run_id"])
    assert question["undo"] == {"undo_s": WINDOW_S, "held_until": None}
    got = answer(api, question["id"], True)
    assert got["status"] == "accepted", got
    return run, got


def _hooks(receiver: Receiver, run_id: str) -> list[dict[str, Any]]:
    """The run's webhook deliveries, each verified per Standard Webhooks."""
    out = []
    for r in receiver.at("/ok/undo"):
        payload: dict[str, Any] = Webhook(SECRET).verify(r.body, r.headers)
        if payload["data"]["run_id"] == run_id:
            out.append(payload)
    return out


def _past(held_until: str, extra_s: float) -> None:
    """Waits until the window closed ``extra_s`` ago (by this machine's clock)."""
    while time.time() * 1000 < _ms(held_until) + extra_s * 1000:
        time.sleep(0.1)


def test_an_answer_not_withdrawn_resumes_the_run_once_after_the_window(
    broker: Broker, api: httpx.Client
) -> None:
    run, got = _held(api)
    held_until = _ms(got["undo"]["held_until"])
    done = wait_status(api, run["run_id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done
    assert _counts(broker, run["thread_id"]) == (1, 1)
    events = _events(api, run["run_id"])
    kinds = [e["type"] for e in events]
    assert kinds.count("run.resumed") == 1
    i = kinds.index("interrupt.accepted")
    assert kinds[i:] == ["interrupt.accepted", "interrupt.resolved", "run.resumed", "run.succeeded"]
    # released and resumed no earlier than the window's close
    assert all(e["ts"] >= held_until for e in events[i + 1 :])
    final = api.get(f"/interrupts/{got['id']}").json()
    assert final["status"] == "resolved" and final["resolution"]["value"] is True


def test_an_answer_withdrawn_within_the_window_never_resumes_the_run(
    broker: Broker, api: httpx.Client, receiver: Receiver
) -> None:
    run, got = _held(api)
    withdrawn = api.post(f"/interrupts/{got['id']}/withdraw")
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["status"] == "pending"
    again = api.post(f"/interrupts/{got['id']}/withdraw")
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_held"

    # past the window, and past the reconciler's grace after it: nothing resumed
    _past(got["undo"]["held_until"], 3)
    state = api.get(f"/runs/{run['run_id']}").json()
    assert state["status"] == "interrupted" and state["pending_interrupts"] == [got["id"]]
    assert _counts(broker, run["thread_id"]) == (0, 0)

    # answered anew: that answer is the one the run resumes with, once
    second = answer(api, got["id"], False)
    assert second["status"] == "accepted"
    done = wait_status(api, run["run_id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done
    assert done["output"]["values"]["answer"] is False
    assert _counts(broker, run["thread_id"]) == (1, 1)
    kinds = [e["type"] for e in _events(api, run["run_id"])]
    assert kinds.count("run.resumed") == 1
    assert kinds.count("interrupt.withdrawn") == 1 and kinds.count("interrupt.accepted") == 2
    # and so were the webhooks told, in order
    wait_until(lambda: len(_hooks(receiver, run["run_id"])) == 4, "the four webhooks")
    delivered = _hooks(receiver, run["run_id"])
    assert sorted(d["type"] for d in delivered) == sorted(
        ["interrupt.accepted", "interrupt.withdrawn", "interrupt.accepted", "interrupt.resolved"]
    )
    assert {d["data"]["interrupt_id"] for d in delivered} == {got["id"]}


def test_workers_killed_during_the_window_still_resume_the_run_once(
    broker: Broker, api: httpx.Client
) -> None:
    run, got = _held(api)
    for w in broker.workers:
        w.kill()
    if time.time() < _ms(got["undo"]["held_until"]) / 1000:
        # the kills came inside the window (as they do unless the machine is very slow):
        # the answer is still held, the run not resumed
        held = api.get(f"/interrupts/{got['id']}").json()
        assert held["status"] == "accepted", held
        assert _counts(broker, run["thread_id"]) == (0, 0)
    broker.start_worker()
    done = wait_status(api, run["run_id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done
    assert _counts(broker, run["thread_id"]) == (1, 1)
    assert [e["type"] for e in _events(api, run["run_id"])].count("run.resumed") == 1


def test_a_window_whose_job_was_lost_is_resumed_once_by_the_reconciler(
    broker: Broker, api: httpx.Client
) -> None:
    run, got = _held(api)
    # the queued resume is lost (say, a Redis without persistence restarted meanwhile)
    k = Keys(broker.env["BROKER_KEY_PREFIX"])
    job_id = jobs.advance_job_id(run["run_id"], got["id"], (run["thread_id"], "counter"))
    r = redis.Redis.from_url(broker.env["REDIS_URL"])
    try:
        assert r.zrem(k.queue, job_id) == 1
        r.delete(k.arq_job_prefix + job_id)
    finally:
        r.close()
    done = wait_status(api, run["run_id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done
    assert _counts(broker, run["thread_id"]) == (1, 1)
    events = _events(api, run["run_id"])
    assert [e["type"] for e in events].count("run.resumed") == 1
    resumed = next(e for e in events if e["type"] == "run.resumed")
    assert resumed["ts"] >= _ms(got["undo"]["held_until"])


def test_an_ag_ui_resume_held_then_withdrawn_shows_the_question_again(
    broker: Broker, api: httpx.Client
) -> None:
    """The AG-UI stream of a resume waits while the answer is held; withdrawn, the
    question is back, and the stream ends on it as on any interrupt."""
    thread = str(uuid.uuid4())
    first = agui(broker, "naming", run_input(thread))
    [question] = next(e for e in first if e["type"] == "RUN_FINISHED")["outcome"]["interrupts"]
    resume = run_input(
        thread, resume=[{"interruptId": question["id"], "status": "resolved", "payload": True}]
    )
    with ThreadPoolExecutor(1) as pool:
        streaming = pool.submit(agui, broker, "naming", resume)
        wait_until(
            lambda: api.get(f"/interrupts/{question['id']}").json()["status"] == "accepted",
            "the answer to be held",
        )
        withdrawn = api.post(f"/interrupts/{question['id']}/withdraw")
        assert withdrawn.status_code == 200, withdrawn.text
        events = streaming.result(timeout=60)
    finished = next(e for e in events if e["type"] == "RUN_FINISHED")
    assert [i["id"] for i in finished["outcome"]["interrupts"]] == [question["id"]]
    assert api.get(f"/interrupts/{question['id']}").json()["status"] == "pending"
