"""A Sentinel-managed Redis of a test's own: one primary, replicas, and sentinels, all
private redis-server processes on free loopback ports (tests/servers.py)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from tests.harness import Broker, wait_until
from tests.servers import RedisServer

MASTER = "brokermaster"
PREFIX = "ibsent"
# Redis-side durability, as the README recommends: a primary without a replica that
# is in touch refuses writes, so a demoted or isolated one cannot take any.
DATA_ARGS = ("--min-replicas-to-write", "1", "--min-replicas-max-lag", "5")


class SentinelServer(RedisServer):
    """``redis-server sentinel.conf --sentinel``; the conf lives in its own directory
    (a sentinel rewrites it)."""

    def __init__(self, workdir: Path, primary_port: int, *, quorum: int) -> None:
        super().__init__(workdir)
        self.conf = self.dir / "sentinel.conf"
        self.conf.write_text(
            f"port {self.port}\n"
            "bind 127.0.0.1\n"
            f"dir {self.dir}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {primary_port} {quorum}\n"
            f"sentinel down-after-milliseconds {MASTER} 1000\n"
            f"sentinel failover-timeout {MASTER} 4000\n"
            f"sentinel parallel-syncs {MASTER} 2\n"
        )

    def command(self) -> list[str]:
        return ["redis-server", str(self.conf), "--sentinel"]


class SentinelCluster:
    """``replicas`` replicas of one primary, watched by ``sentinels`` sentinels."""

    def __init__(self, workdir: Path, *, replicas: int = 2, sentinels: int = 3) -> None:
        self.primary = RedisServer(workdir / "node0", args=DATA_ARGS)
        self.nodes = [self.primary]
        for n in range(replicas):
            self.nodes.append(
                RedisServer(
                    workdir / f"node{n + 1}",
                    args=(*DATA_ARGS, "--replicaof", "127.0.0.1", str(self.primary.port)),
                )
            )
        quorum = sentinels // 2 + 1
        self.sentinels = [
            SentinelServer(workdir / f"sentinel{n}", self.primary.port, quorum=quorum)
            for n in range(sentinels)
        ]
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        self.url = f"redis+sentinel://{hosts}/{MASTER}/0"

    def start(self) -> SentinelCluster:
        for node in self.nodes:
            node.start()
        for s in self.sentinels:
            s.start()
        wait_until(lambda: self.in_sync(len(self.nodes) - 1), "replicas in sync, sentinels agreed")
        return self

    def stop(self) -> None:
        for server in [*self.sentinels, *self.nodes]:
            server.stop()

    def sentinel(self) -> redis.Redis:
        return self.sentinels[0].client(socket_timeout=2, decode_responses=True)

    def primary_port(self) -> int | None:
        """The primary's port as the first sentinel names it."""
        client = self.sentinel()
        try:
            addr = client.sentinel_get_master_addr_by_name(MASTER)
            return int(addr[1]) if addr else None
        except redis.RedisError:
            return None
        finally:
            client.close()

    def node(self, port: int) -> RedisServer:
        return next(n for n in self.nodes if n.port == port)

    def in_sync(self, replicas: int) -> bool:
        """Every sentinel sees the primary, the other sentinels and ``replicas`` replicas,
        each linked to it."""
        if self.primary_port() is None:
            return False
        for s in self.sentinels:
            client = s.client(socket_timeout=2, decode_responses=True)
            try:
                master = client.sentinel_master(MASTER)
                seen = client.sentinel_slaves(MASTER)
            except redis.RedisError:
                return False
            finally:
                client.close()
            up = [r for r in seen if r.get("master-link-status") == "ok" and not r["is_sdown"]]
            if len(up) < replicas or master["num-other-sentinels"] < len(self.sentinels) - 1:
                return False
        return True

    def failover(self) -> float:
        """``SENTINEL FAILOVER``: a graceful switch to a replica. Returns when it began."""
        client = self.sentinel()
        try:
            began = time.monotonic()
            client.execute_command("SENTINEL", "FAILOVER", MASTER)
            return began
        finally:
            client.close()


@contextlib.contextmanager
def deployment(
    cluster: SentinelCluster, counts: RedisServer, logdir: Path, **env: str
) -> Iterator[Broker]:
    """The API and two workers on the cluster's ``redis+sentinel://`` URL; the test
    graphs count on ``counts``, a server outside the failover."""
    broker = Broker(
        cluster.url,
        PREFIX,
        logdir,
        TEST_COUNTS_URL=counts.url,
        BROKER_RECONCILE_INTERVAL_S="1",
        BROKER_RECONCILE_GRACE_S="3",
        BROKER_THREAD_LOCK_TTL_S="5",
        **env,
    )
    try:
        broker.start_worker()
        broker.start_worker()
        broker.start_api()
        broker.wait_ready()
        yield broker
    finally:
        broker.stop()


def count(counts: RedisServer, what: str, thread_id: str) -> int:
    """How often the test graph's ``what`` step ran on ``thread_id``."""
    client = counts.client()
    try:
        return int(client.get(f"{PREFIX}:test:{what}:{thread_id}") or 0)
    finally:
        client.close()
