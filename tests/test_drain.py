"""Graceful drain on SIGTERM: the API finishes in-flight requests and ends its streams
with a reconnect hint; a worker takes no new job and finishes its attempts within the
grace (``BROKER_DRAIN_GRACE_S``) while another worker carries on: nothing is lost, and
nothing runs twice."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.flow import answer, next_interrupt, start, wait_status
from tests.harness import Broker, wait_until
from tests.outage import FAST_ENV
from tests.test_failure_modes import SseReader, _sse_events

pytestmark = pytest.mark.slow


@pytest.fixture
def broker(redis_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Broker]:
    prefix = f"ibdrain{abs(hash(request.node.name)) % 10**6}"
    b = Broker(redis_url, prefix, tmp_path, **FAST_ENV, BROKER_DRAIN_GRACE_S="60")
    with b.serving():
        yield b


def _slow_body() -> Iterator[bytes]:
    """A POST /runs body that takes a while to arrive: in flight when SIGTERM comes."""
    yield b'{"agent_id": "counter", '
    time.sleep(2)
    yield b'"input": {}}'


def test_sigterm_to_the_api_finishes_requests_and_hints_streams(broker: Broker) -> None:
    b = broker
    assert b.api is not None
    with httpx.Client(base_url=b.url, timeout=30) as api:
        run_id = start(api, "counter", {})["run_id"]
        next_interrupt(api, run_id)
        sse = SseReader(f"{b.url}/runs/{run_id}/events")
        frames: list[dict[str, Any]] = []
        closed: dict[str, Any] = {}
        socket_live = threading.Event()

        def read_ws() -> None:
            with connect(b.url.replace("http://", "ws://") + "/ws?after=0") as ws:
                try:
                    for raw in ws:
                        frames.append(json.loads(raw))
                        if frames[-1].get("type") == "live":
                            socket_live.set()
                except ConnectionClosed:
                    pass
                finally:
                    closed["code"] = ws.close_code

        ws_thread = threading.Thread(target=read_ws, daemon=True)
        ws_thread.start()
        assert socket_live.wait(30)
        wait_until(lambda: "run.interrupted" in sse.text, "the SSE replay")

        slow: dict[str, Any] = {}

        def post_slowly() -> None:
            try:
                r = httpx.post(
                    f"{b.url}/runs",
                    content=_slow_body(),
                    headers={"content-type": "application/json"},
                    timeout=30,
                )
                slow["status"], slow["body"] = r.status_code, r.json()
            except httpx.HTTPError as exc:
                slow["error"] = f"{type(exc).__name__}: {exc}"

        poster = threading.Thread(target=post_slowly)
        poster.start()
        time.sleep(0.5)  # its first bytes are sent; the rest follow after the signal
        b.api.p.send_signal(signal.SIGTERM)

        poster.join(30)
        assert "error" not in slow, slow["error"]
        assert slow["status"] == 202, slow
        sse.thread.join(30)
        ws_thread.join(30)
        assert sse.error is None, sse.error
        hint = sse.events()[-1]
        assert hint["event"] == "error" and int(hint["retry"]) > 0
        data = json.loads(hint["data"])
        assert data["code"] == "shutting_down"
        seen = [e["id"] for e in sse.events() if "id" in e]
        assert data["resume_from"] == seen[-1]
        assert closed["code"] == 1013
        assert frames[-1]["code"] == "shutting_down"
        ws_ids = [f["id"] for f in frames if f.get("type") not in ("live", "error")]
        assert frames[-1]["resume_from"] == ws_ids[-1]
        b.api.p.wait(30)
        b.api.stop()  # closes its log

    # a new API process: the run accepted during the drain is there, and resuming
    # from the hint misses nothing
    b.start_api()
    with httpx.Client(base_url=b.url, timeout=30) as api:
        late = slow["body"]["run_id"]
        answer(api, next_interrupt(api, late)["id"], 1)
        answer(api, next_interrupt(api, run_id)["id"], 1)
        for rid in (late, run_id):
            wait_status(api, rid, "succeeded")
        rest = api.get(f"/runs/{run_id}/events", headers={"Last-Event-ID": data["resume_from"]})
        every = api.get(f"/runs/{run_id}/events")
        ids = [e["id"] for e in _sse_events(every.text) if "id" in e]
        assert seen + [e["id"] for e in _sse_events(rest.text) if "id" in e] == ids


def test_sigterm_to_a_worker_finishes_its_attempts_while_another_takes_new_work(
    broker: Broker,
) -> None:
    b = broker
    prefix = b.env["BROKER_KEY_PREFIX"]
    draining = b.workers[0]
    store = redis.Redis.from_url(b.env["REDIS_URL"], decode_responses=True)
    with httpx.Client(base_url=b.url, timeout=30) as api:
        # three runs inside a slow node on the first worker (blocked on their gates)
        slow = [start(api, "gated", {}) for _ in range(3)]
        for run in slow:
            answer(api, next_interrupt(api, run["run_id"])["id"], 1)
        for run in slow:
            key = f"{prefix}:test:answered:{run['thread_id']}"
            wait_until(lambda key=key: store.get(key) == "1", "the slow node to start")

        b.start_worker()

        def workers() -> int:
            got: int = api.get("/readyz").json()["checks"]["workers"]
            return got

        wait_until(lambda: workers() == 2, "the second worker's heartbeat")
        draining.p.send_signal(signal.SIGTERM)
        # readiness stops counting the draining worker at once, though it still runs
        wait_until(lambda: workers() == 1, "readiness to drop the draining worker")
        assert draining.p.poll() is None
        # the draining worker takes nothing new: new runs go to the other one while
        # the first is still finishing its attempts
        fresh = [start(api, "counter", {}) for _ in range(3)]
        for run in fresh:
            answer(api, next_interrupt(api, run["run_id"])["id"], 1)
            wait_status(api, run["run_id"], "succeeded")
        assert draining.p.poll() is None, "the worker stopped before its attempts ended"

        for run in slow:
            store.rpush(f"{prefix}:test:gate:{run['thread_id']}", "open")
        for run in slow:
            wait_status(api, run["run_id"], "succeeded")
        assert draining.p.wait(30) == 0
        assert b.workers[1].p.poll() is None

    for run in slow + fresh:
        for what in ("answered", "after"):
            got = store.get(f"{prefix}:test:{what}:{run['thread_id']}")
            assert got == "1", f"{what} ran {got} times on {run['run_id']}"
    store.close()
