"""arq's keys live under the broker's prefix: two deployments share one Redis without
seeing each other's jobs, results or aborts, and nothing is written outside a prefix."""

from __future__ import annotations

import asyncio
import contextlib
import pickle
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from broker.core.arq_keys import names
from broker.core.jobs import advance_job_id
from broker.core.keys import Keys
from tests.flow import next_interrupt, start, wait_status
from tests.harness import Broker, wait_until
from tests.servers import RedisServer

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    s = RedisServer(tmp_path / "redis")
    try:
        yield s.start()
    finally:
        s.stop()


@contextlib.contextmanager
def serving(server: RedisServer, prefix: str, logdir: Path) -> Iterator[httpx.Client]:
    broker = Broker(server.url, prefix, logdir)
    try:
        broker.start_worker()
        broker.start_api()
        broker.wait_ready()
        with httpx.Client(base_url=broker.url, timeout=30) as api:
            yield api
    finally:
        broker.stop()


def test_arq_key_names_come_from_keys_py() -> None:
    k = Keys("dep")
    assert all(v.startswith("dep:") for v in names(k).values())
    assert names(k)["abort_jobs_ss"] == k.arq_abort


def test_two_deployments_on_one_redis_keep_their_jobs_apart(
    server: RedisServer, tmp_path: Path
) -> None:
    client = server.client(decode_responses=True)
    with serving(server, "depa", tmp_path) as a, serving(server, "depb", tmp_path) as b:
        done = {}
        for name, api in (("depa", a), ("depb", b)):
            run = start(api, "counter", {})
            h = next_interrupt(api, run["run_id"])
            assert api.post(f"/interrupts/{h['id']}/resolve", json={"value": 1}).status_code == 200
            wait_status(api, run["run_id"], "succeeded")
            done[name] = run["run_id"]
        # a cancel while a worker executes the run: an abort, in A's abort set only
        gated = start(a, "gated", {})
        h = next_interrupt(a, gated["run_id"])
        assert a.post(f"/interrupts/{h['id']}/resolve", json={"value": 1}).status_code == 200
        wait_until(lambda: client.get(f"depa:test:answered:{gated['thread_id']}"), "the gated node")
        assert a.post(f"/runs/{gated['run_id']}/cancel").status_code == 200
        wait_status(a, gated["run_id"], "cancelled")
        # the worker read the abort from A's set and stopped the job while it was blocked
        job_id = advance_job_id(gated["run_id"], h["id"], (gated["thread_id"], "gated"))
        result_key = f"{Keys('depa').arq_result_prefix}{job_id}"
        raw = wait_until(lambda: server.client().get(result_key), "the aborted job's result")
        result = pickle.loads(raw)
        assert result["s"] is False and isinstance(result["r"], asyncio.CancelledError)
        client.rpush(f"depa:test:gate:{gated['thread_id']}", "go")  # free the node's thread

        every = list(client.scan_iter(count=1000))
        outside = [k for k in every if not k.startswith(("depa:", "depb:"))]
        assert not outside, f"keys outside both prefixes: {outside}"
        for mine, other in (("depa", "depb"), ("depb", "depa")):
            ours = [k for k in every if done[mine] in k]
            # arq's result of the run's job is kept under its own deployment's prefix
            assert any(k.startswith(f"{mine}:arq:result:") for k in ours), ours
            assert all(k.startswith(f"{mine}:") for k in ours), ours
            assert not [k for k in every if k.startswith(f"{other}:") and done[mine] in k]
    client.close()
