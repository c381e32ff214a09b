"""A worker killed mid-node, and Redis stalled mid-node, with real processes
(docs/design.md, "Leases and fencing"; invariants 2 and 3).

- a worker SIGKILLed in a slow node while another worker runs: the other one finishes
  the run; the killed attempt's node runs once more, as documented, and no more. arq's
  job timeout is an hour, so only the hand-on can have recovered it in the test's time;
- Redis SIGSTOPped for longer than the lease lives while a slow node runs: the holder
  takes its lease again, and the node runs to completion exactly once.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from broker.core.keys import Keys
from tests.flow import start, wait_status
from tests.graphs import count
from tests.harness import Broker, delete_prefix, free_port, wait_until
from worker.locks import holder_of

pytestmark = pytest.mark.slow

LEASE_TTL_S = 2.0
FAST = {
    "BROKER_LEASE_TTL_S": str(LEASE_TTL_S),
    "BROKER_WORKER_HEARTBEAT_S": "0.5",
    "BROKER_RECONCILE_INTERVAL_S": "0.5",
    "BROKER_RECONCILE_GRACE_S": "1",
    # arq would deliver a dead worker's job again only after this: never, in this test
    "BROKER_JOB_TIMEOUT_S": "3600",
}


class OwnRedis:
    """A redis-server of the test's own, which the test may pause (SIGSTOP)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(workdir)]
        self.proc = subprocess.Popen(
            ["redis-server", *args, "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL
        )

        def up() -> bool:
            try:
                return bool(redis.Redis.from_url(self.url).ping())
            except redis.RedisError:
                return False

        wait_until(up, "redis-server to start")

    def stall(self, seconds: float) -> None:
        self.proc.send_signal(signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGCONT)
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def make_broker(prefix: str, tmp_path: Path) -> Iterator[Any]:
    made: list[Broker] = []

    def make(url: str, **env: str) -> Broker:
        b = Broker(url, prefix, tmp_path, **{**FAST, **env})
        made.append(b)
        return b

    yield make
    for b in made:
        b.stop()


def _two_workers(b: Broker) -> None:
    b.start_worker()
    b.start_worker()
    b.start_api()
    b.wait_ready()


def test_a_worker_killed_mid_node_is_handed_on_to_the_other(
    make_broker: Any, redis_url: str, prefix: str
) -> None:
    b = make_broker(redis_url)
    _two_workers(b)
    with httpx.Client(base_url=b.url, timeout=30) as api:
        run = start(api, "slow", {"seconds": 5})
        thread = run["thread_id"]
        wait_until(lambda: count(redis_url, prefix, "began", thread) == 1, "the node to begin")
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            token = client.get(Keys(prefix).thread_lease(thread))
        finally:
            client.close()
        assert token, "the node runs under a lease"
        pid = int(holder_of(token).split(":")[-2])
        [victim] = [w for w in b.workers if w.p.pid == pid]
        victim.kill()

        done = wait_status(api, run["run_id"], "succeeded", "failed")
    assert done["status"] == "succeeded", done
    assert done["output"]["values"]["done"] == 1
    # the killed attempt's node ran once more (it never finished), and only once more
    assert count(redis_url, prefix, "began", thread) == 2
    assert count(redis_url, prefix, "done", thread) == 1
    assert done["attempts"] == 2


def test_a_redis_stall_longer_than_the_lease_runs_the_node_once(
    make_broker: Any, prefix: str, tmp_path: Path
) -> None:
    server = OwnRedis(tmp_path)
    try:
        # a stall, not errors: every command waits it out rather than time out (a renewal
        # that fails with errors until the lease would lapse stops the attempt instead)
        b = make_broker(server.url, BROKER_REDIS_TIMEOUT_S=str(LEASE_TTL_S * 8))
        _two_workers(b)
        with httpx.Client(base_url=b.url, timeout=30) as api:
            run = start(api, "slow", {"seconds": 3})
            thread = run["thread_id"]
            wait_until(lambda: count(server.url, prefix, "began", thread) == 1, "the node to begin")
            # every lease and heartbeat lapses; the node finishes during the stall
            server.stall(LEASE_TTL_S * 2.5)
            done = wait_status(api, run["run_id"], "succeeded", "failed")
            time.sleep(LEASE_TTL_S * 2)  # room for a wrongly queued second attempt to show
            assert api.get(f"/runs/{run['run_id']}").json()["attempts"] == 1
        assert done["status"] == "succeeded", done
        assert count(server.url, prefix, "began", thread) == 1
        assert count(server.url, prefix, "done", thread) == 1
    finally:
        delete_prefix(server.url, prefix)
        server.stop()
