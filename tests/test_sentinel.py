"""The broker on a Sentinel-managed Redis: everything works through a
``redis+sentinel://`` URL, and a failover (graceful, or a crash of the primary) loses
nothing the broker acknowledged.

Each test has its own primary, two replicas and three sentinels (tests/sentinel_cluster.py,
``min-replicas-to-write 1`` on the data nodes), and the API plus two workers on them.
``BROKER_TEST_FAILOVER_RUNS`` sets how many runs are in flight (default 200, as in
bench/failover.py); the tests print the recovery times.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from redis.asyncio.sentinel import Sentinel

from broker.core.connections import redis_client
from broker.core.primary import PrimaryPool
from broker.core.settings import Settings
from tests.failover_load import Ledger, asked_again, drive, final_answers, report
from tests.flow import next_interrupt, start, wait_status
from tests.harness import Broker, wait_until
from tests.sentinel_cluster import PREFIX, SentinelCluster, count, deployment
from tests.servers import RedisServer

pytestmark = pytest.mark.slow

RUNS = int(os.environ.get("BROKER_TEST_FAILOVER_RUNS", "200"))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SentinelCluster]:
    c = SentinelCluster(tmp_path / "redis")
    try:
        yield c.start()
    finally:
        c.stop()


@pytest.fixture
def counts(tmp_path: Path) -> Iterator[RedisServer]:
    """The counters of tests/graphs.py, on a server outside the failover."""
    server = RedisServer(tmp_path / "counts")
    try:
        yield server.start()
    finally:
        server.stop()


def test_everything_works_through_a_sentinel_url(
    cluster: SentinelCluster, counts: RedisServer, tmp_path: Path
) -> None:
    with (
        deployment(cluster, counts, tmp_path) as broker,
        httpx.Client(base_url=broker.url, timeout=30) as api,
    ):
        primary = cluster.node(cluster.primary_port() or 0).client(decode_responses=True)
        # both workers wait for wake-ups on the primary's channel (each subscribes just
        # after its first heartbeat)
        wait_until(
            lambda: primary.pubsub_numsub(f"{PREFIX}:wake") == [(f"{PREFIX}:wake", 2)],
            "both workers to subscribe to wake-ups",
        )
        run = start(api, "counter", {})
        # the run, and arq's job for it, are under the prefix on the primary
        assert primary.exists(f"{PREFIX}:run:{run['run_id']}")
        interrupt = next_interrupt(api, run["run_id"])  # worker, saver, arq queue
        assert (
            api.post(f"/interrupts/{interrupt['id']}/resolve", json={"value": True}).status_code
            == 200
        )
        # the event hub (XREAD) follows the run to its end over SSE
        with api.stream("GET", f"/runs/{run['run_id']}/events") as events:
            kinds = [
                line.removeprefix("event: ")
                for line in events.iter_lines()
                if line.startswith("event: ")
            ]
        assert kinds[-1] == "run.succeeded", kinds
        wait_status(api, run["run_id"], "succeeded")
        thread = run["thread_id"]
        assert (count(counts, "answered", thread), count(counts, "after", thread)) == (1, 1)
        primary.close()


def test_a_write_no_replica_confirms_is_503_and_its_retry_is_safe(
    cluster: SentinelCluster, counts: RedisServer, tmp_path: Path
) -> None:
    with (
        deployment(cluster, counts, tmp_path) as broker,
        httpx.Client(base_url=broker.url, timeout=30) as api,
    ):
        replicas = [n for n in cluster.nodes if n.port != cluster.primary_port()]
        body = {"agent_id": "counter", "input": {}}
        headers = {"Idempotency-Key": "start-once"}
        for r in replicas:
            r.pause()  # in touch a few seconds more (min-replicas-max-lag), but no ACKs
        try:
            refused = api.post("/runs", json=body, headers=headers)
        finally:
            for r in replicas:
                r.resume()
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "redis_unavailable"
        assert "may or may not" in refused.json()["error"]["message"]
        # the write was made on the primary; the retry gets it, and starts nothing new
        first = api.post("/runs", json=body, headers=headers)
        again = api.post("/runs", json=body, headers=headers)
        assert first.status_code == again.status_code == 202
        assert first.json() == again.json()
        other = api.post("/runs", json={**body, "input": {"x": 1}}, headers=headers)
        assert other.status_code == 422
        assert other.json()["error"]["code"] == "idempotency_key_reused"
        listed = api.get("/runs", params={"agent_id": "counter"}).json()["items"]
        assert [r["run_id"] for r in listed] == [first.json()["run_id"]]


def _check(ledger: Ledger, broker: Broker, counts: RedisServer) -> None:
    assert not ledger.unexpected, ledger.unexpected[:5]
    assert len(ledger.runs) == RUNS
    assert not ledger.vanished, f"acknowledged runs that 404ed: {sorted(ledger.vanished)[:5]}"
    assert not ledger.reasked, f"answered, then pending again: {sorted(ledger.reasked)[:5]}"
    assert not ledger.double_wins, f"two answers accepted: {ledger.double_wins[:5]}"
    assert ledger.ended == {run_id: "succeeded" for run_id in ledger.runs}
    assert len(ledger.answered) == RUNS
    final = asyncio.run(final_answers(broker.url, ledger))
    lost = [
        iid
        for iid, h in final.items()
        if h.get("status") != "resolved" or h["resolution"]["value"] != ledger.answered[iid]
    ]
    assert not lost, f"acknowledged answers not applied: {lost[:5]}"
    # no run put its question twice, so no node ran for a second answer; a node the
    # failover cut off mid-run (its checkpoint not yet written) runs again, as after any
    # crash of a worker, but never more than that once
    assert not asked_again(ledger), f"runs that asked twice: {asked_again(ledger)[:5]}"
    runs_of = [
        (count(counts, "answered", t), count(counts, "after", t)) for t in ledger.runs.values()
    ]
    off = [
        (t, ab)
        for t, ab in zip(ledger.runs.values(), runs_of, strict=True)
        if not (1 <= ab[0] <= 2 and 1 <= ab[1] <= 2)
    ]
    assert not off, f"threads whose nodes ran (answered, after) times out of 1-2: {off[:5]}"
    print(f"  nodes run again after being cut off: {sum(a + b - 2 for a, b in runs_of)}")
    listed = httpx.get(f"{broker.url}/runs", params={"limit": 500}, timeout=30).json()["items"]
    assert len(listed) == RUNS  # retried starts made no second run
    for w in broker.workers:
        assert w.p.poll() is None, f"a worker exited:\n{w.output()[-3000:]}"


async def _switched(cluster: SentinelCluster, old: int, ledger: Ledger) -> None:
    while (await asyncio.to_thread(cluster.primary_port)) in (old, None):
        await asyncio.sleep(0.05)
    ledger.switched_at = time.monotonic()


def test_a_graceful_failover_loses_no_acknowledged_work(
    cluster: SentinelCluster, counts: RedisServer, tmp_path: Path
) -> None:
    ledger = Ledger()
    old = cluster.primary.port

    async def fault() -> None:
        ledger.failover_at = await asyncio.to_thread(cluster.failover)
        await _switched(cluster, old, ledger)

    with deployment(cluster, counts, tmp_path) as broker:
        asyncio.run(drive(broker.url, RUNS, fault=fault, fault_after=RUNS // 3, ledger=ledger))
        print("\n" + report(ledger, "SENTINEL FAILOVER"))
        _check(ledger, broker, counts)
        # the old primary rejoined as a replica of the new one
        wait_until(lambda: cluster.in_sync(2), "the old primary to rejoin as a replica")


def test_a_crashed_primary_loses_no_acknowledged_work(
    cluster: SentinelCluster, counts: RedisServer, tmp_path: Path
) -> None:
    ledger = Ledger()
    old = cluster.primary.port

    async def fault() -> None:
        ledger.failover_at = time.monotonic()
        cluster.primary.crash()
        await _switched(cluster, old, ledger)

    with deployment(cluster, counts, tmp_path) as broker:
        asyncio.run(drive(broker.url, RUNS, fault=fault, fault_after=RUNS // 3, ledger=ledger))
        print("\n" + report(ledger, "SIGKILL of the primary"))
        _check(ledger, broker, counts)
        with contextlib.suppress(redis.RedisError):
            assert cluster.primary_port() != old


class _StaleSentinel(Sentinel):
    """Sentinels that still name a node that is no longer the primary."""

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__([])
        self.address = address

    async def discover_master(self, service_name: str) -> tuple[str, int]:
        return self.address


def test_a_pool_never_writes_to_a_replica_or_a_demoted_primary(tmp_path: Path) -> None:
    primary = RedisServer(tmp_path / "p").start()
    replica = RedisServer(tmp_path / "r", args=("--replicaof", "127.0.0.1", str(primary.port)))
    replica.start()

    async def scenario() -> None:
        # connecting: the role is checked, so a replica named as primary is refused
        stale = _StaleSentinel(("127.0.0.1", replica.port)).master_for(
            "m", connection_pool_class=PrimaryPool
        )
        with pytest.raises(redis.exceptions.ConnectionError, match="not the primary"):
            await stale.set("k", "v")
        await stale.aclose()
        # connected: once the primary is demoted, the first READONLY moves the whole pool
        client = _StaleSentinel(("127.0.0.1", primary.port)).master_for(
            "m", connection_pool_class=PrimaryPool
        )
        pool: PrimaryPool = client.connection_pool
        others = [await pool.get_connection() for _ in range(3)]
        for c in others:
            await pool.release(c)
        assert await client.set("k", "v")
        demote = primary.client()
        demote.execute_command("REPLICAOF", "127.0.0.1", str(replica.port))
        demote.close()
        before = pool.generation
        with pytest.raises(redis.exceptions.ConnectionError, match="demoted"):
            await client.set("k", "w")
        assert pool.generation > before  # every idle connection reconnects before its use
        assert all(c.generation < pool.generation for c in others)
        with pytest.raises(redis.exceptions.ConnectionError, match="not the primary"):
            await client.set("k", "w")  # the reconnect checks the role again
        await client.aclose()

    try:
        asyncio.run(scenario())
    finally:
        replica.stop()
        primary.stop()


def test_a_plain_url_connection_leaves_a_demoted_primary(tmp_path: Path) -> None:
    """A managed service's DNS name follows the primary: a connection that finds its
    node demoted closes, so the next command reconnects to wherever the name points."""
    primary = RedisServer(tmp_path / "p").start()
    replica = RedisServer(tmp_path / "r", args=("--replicaof", "127.0.0.1", str(primary.port)))
    replica.start()

    async def scenario() -> None:
        client = redis_client(Settings(redis_url=primary.url, key_prefix=PREFIX))
        assert await client.set("k", "v")
        [connection] = client.connection_pool._available_connections
        demote = primary.client()
        demote.execute_command("REPLICAOF", "127.0.0.1", str(replica.port))
        demote.close()
        with pytest.raises(redis.exceptions.ConnectionError, match="demoted"):
            await client.set("k", "w")
        assert not connection.is_connected
        await client.aclose()

    try:
        asyncio.run(scenario())
    finally:
        replica.stop()
        primary.stop()
