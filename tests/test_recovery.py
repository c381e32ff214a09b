"""Crashes and restarts: invariants 2, 3 and 7 of docs/design.md, with real processes.

- a worker killed in the middle of a resume: the run still resumes, exactly once;
- an answer recorded but never queued (the API died in between): the reconciler resumes it;
- two workers, two answers at once on one thread: the graph never runs twice in parallel;
- Redis killed and restarted from its append-only file: nothing is lost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from broker.core.keys import Keys
from tests.flow import answer, next_interrupt, pending, run_state, start, wait_status
from tests.graphs import count
from tests.harness import Broker, delete_prefix, wait_until
from tests.servers import RedisServer

pytestmark = pytest.mark.slow

FAST_RECOVERY = {
    "BROKER_LEASE_TTL_S": "2",
    "BROKER_RECONCILE_INTERVAL_S": "0.5",
    "BROKER_RECONCILE_GRACE_S": "1",
    "BROKER_WORKER_HEARTBEAT_S": "0.5",
}


@pytest.fixture
def make_broker(redis_url: str, prefix: str, tmp_path: Path) -> Iterator[Any]:
    made: list[Broker] = []

    def make(url: str = redis_url, **env: str) -> Broker:
        b = Broker(url, prefix, tmp_path, **{**FAST_RECOVERY, **env})
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()


def test_worker_killed_mid_resume_still_resumes_once(
    make_broker: Any, redis_url: str, prefix: str
) -> None:
    b = make_broker()
    first = b.start_worker()
    b.start_api()
    b.wait_ready()
    with httpx.Client(base_url=b.url, timeout=30) as api:
        run = start(api, "gated", {})
        target = next_interrupt(api, run["run_id"])
        r = api.post(f"/interrupts/{target['id']}/resolve", json={"value": "go"})
        assert r.status_code == 200
        thread = run["thread_id"]
        # the worker is now inside the node, past interrupt(), blocked on the gate
        wait_until(lambda: count(redis_url, prefix, "answered", thread) == 1, "the node to run")
        first.kill()
        assert run_state(api, run["run_id"])["status"] == "running"

        b.start_worker()
        client = redis.Redis.from_url(redis_url)
        try:
            # the new worker re-enters the node once the dead one's lock lapses
            wait_until(
                lambda: count(redis_url, prefix, "answered", thread) == 2, "the retried node"
            )
            client.rpush(f"{prefix}:test:gate:{thread}", "open")
        finally:
            client.close()
        done = wait_status(api, run["run_id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done
    assert done["output"]["values"]["answer"] == "go"
    assert done["attempts"] >= 3  # start, resume, recovery
    assert count(redis_url, prefix, "after", thread) == 1


def test_an_answer_whose_job_was_lost_is_resumed_by_the_reconciler(
    make_broker: Any, redis_url: str, prefix: str
) -> None:
    # The answer queues its run's job in the same step that records it; here that job
    # is lost before any worker takes it (as a failover to a replica that had not yet
    # received it would lose it), and the run must still resume.
    b = make_broker()
    worker = b.start_worker()
    b.start_api()
    b.wait_ready()
    with httpx.Client(base_url=b.url, timeout=30) as api:
        run = start(api, "counter", {})
        target = next_interrupt(api, run["run_id"])
        worker.stop()  # no worker takes the job meanwhile
        answer(api, target["id"], "late")
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            keys = Keys(prefix)
            queued = client.zrange(keys.queue, 0, -1)
            assert len(queued) == 1 and queued[0].startswith(f"advance:{run['run_id']}:")
            client.delete(keys.queue, keys.arq_job_prefix + queued[0])
        finally:
            client.close()
        b.start_worker()
        done = wait_status(api, run["run_id"], "succeeded", "failed")
    assert done["status"] == "succeeded"
    assert done["output"]["values"]["answer"] == "late"
    assert count(redis_url, prefix, "after", run["thread_id"]) == 1


def test_two_workers_never_run_one_thread_in_parallel(
    make_broker: Any, redis_url: str, prefix: str
) -> None:
    b = make_broker()
    b.start_worker()
    b.start_worker()
    b.start_api()
    b.wait_ready()
    with httpx.Client(base_url=b.url, timeout=30) as api:
        for _ in range(3):
            run = start(api, "fanout", {})
            wait_status(api, run["run_id"], "interrupted", pending=2)
            a, c = pending(api, run["run_id"])

            async def both(a: dict[str, Any] = a, c: dict[str, Any] = c) -> list[int]:
                async with httpx.AsyncClient(base_url=b.url, timeout=30) as client:
                    rs = await asyncio.gather(
                        client.post(f"/interrupts/{a['id']}/resolve", json={"value": "A"}),
                        client.post(f"/interrupts/{c['id']}/resolve", json={"value": "C"}),
                    )
                    return [r.status_code for r in rs]

            assert asyncio.run(both()) == [200, 200]
            done = wait_status(api, run["run_id"], "succeeded", "failed")
            assert done["status"] == "succeeded", done
            answers = done["output"]["values"]["answers"]
            assert sorted(answers.values()) == ["A", "C"]
            thread = run["thread_id"]
            assert count(redis_url, prefix, "branch-a", thread) == 1
            assert count(redis_url, prefix, "branch-b", thread) == 1
            assert count(redis_url, prefix, "join", thread) == 1


def test_nothing_is_lost_across_a_redis_crash_with_aof(
    make_broker: Any, prefix: str, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path, aof=True)
    server.start()
    try:
        b = make_broker(server.url)
        worker = b.start_worker()
        b.start_api()
        b.wait_ready()
        with httpx.Client(base_url=b.url, timeout=30) as api:
            answered = start(api, "counter", {})
            to_answer = next_interrupt(api, answered["run_id"])
            waiting = start(api, "counter", {})
            still_pending = next_interrupt(api, waiting["run_id"])
            # no worker: the accepted answer's resume stays queued
            worker.stop()
            assert (
                api.post(
                    f"/interrupts/{to_answer['id']}/resolve", json={"value": "kept"}
                ).status_code
                == 200
            )
            queued = start(api, "counter", {})

            server.crash()
            server.start()

            def api_back() -> bool:
                return api.get(f"/runs/{queued['run_id']}").status_code == 200

            wait_until(api_back, "the API to reach the restarted Redis")
            assert api.get(f"/interrupts/{still_pending['id']}").json()["status"] == "pending"
            resolved = api.get(f"/interrupts/{to_answer['id']}").json()
            assert resolved["status"] == "resolved"
            assert resolved["resolution"]["value"] == "kept"
            assert run_state(api, queued["run_id"])["status"] == "queued"

            b.start_worker()
            done = wait_status(api, answered["run_id"], "succeeded", "failed")
            assert done["status"] == "succeeded"
            assert done["output"]["values"]["answer"] == "kept"
            next_interrupt(api, queued["run_id"])
            assert run_state(api, waiting["run_id"])["pending_interrupts"] == [still_pending["id"]]
    finally:
        server.stop()
        delete_prefix(server.url, prefix) if server.proc and server.proc.poll() is None else None
    time.sleep(0)
