"""Client load and Redis faults for the failure-mode and drain tests.

``Load`` starts ``counter`` runs and answers their interrupts from a thread, and
records every response (or transport error) it gets; ``fault`` takes a test's own
``RedisServer`` away in one of three ways and brings it back.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis

from tests.harness import free_port, wait_until
from tests.servers import RedisServer

# What every API process in these tests runs with: Redis errors within a second,
# quick reconciler passes, thread leases that lapse within seconds.
FAST_ENV = {
    "BROKER_REDIS_TIMEOUT_S": "1",
    "BROKER_REDIS_CONNECT_TIMEOUT_S": "1",
    "BROKER_RECONCILE_INTERVAL_S": "1",
    "BROKER_RECONCILE_GRACE_S": "2",
    "BROKER_LEASE_TTL_S": "6",
    "BROKER_LEASE_WAIT_S": "2",
    "BROKER_WORKER_HEARTBEAT_S": "1",
}


@dataclass
class Seen:
    what: str
    status: int  # 0: a transport error (reset, timeout), in ``error``
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    error: str = ""


def record(what: str, send: Any) -> Seen:
    try:
        r = send()
    except httpx.HTTPError as exc:
        return Seen(what, 0, error=f"{type(exc).__name__}: {exc}")
    try:
        body = r.json()
    except ValueError:
        body = r.text
    return Seen(what, r.status_code, body, dict(r.headers))


class Load:
    """Starts runs and answers them from a thread, recording every response."""

    def __init__(self, url: str, *, agent: str = "counter", max_runs: int = 40) -> None:
        self.client = httpx.Client(base_url=url, timeout=30)
        self.agent = agent
        self._run = {"agent_id": agent, "input": {}}
        self.max_runs = max_runs
        self.seen: list[Seen] = []
        self.accepted: dict[str, str] = {}  # run id -> thread id, for runs answered 202
        self.answered: set[str] = set()  # interrupts whose answer got 200
        self.starting = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.halt()
        self.client.close()

    def halt(self) -> None:
        """Stops the thread (``step`` may then be called directly)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(60)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.step()
            time.sleep(0.05)

    def _note(self, seen: Seen) -> Seen:
        self.seen.append(seen)
        return seen

    def step(self) -> None:
        c = self.client
        if self.starting and len(self.accepted) < self.max_runs:
            got = self._note(record("POST /runs", lambda: c.post("/runs", json=self._run)))
            if got.status == 202:
                self.accepted[got.body["run_id"]] = got.body["thread_id"]
        params = {"agent_id": self.agent, "limit": 50}
        got = self._note(record("GET /interrupts", lambda: c.get("/interrupts", params=params)))
        if got.status == 200:
            for item in got.body["items"]:
                if item["run_id"] not in self.accepted:
                    continue  # a run whose POST timed out in a stall: not ours to count
                iid = item["id"]
                res = self._note(
                    record(
                        "POST resolve",
                        lambda iid=iid: c.post(f"/interrupts/{iid}/resolve", json={"value": 1}),
                    )
                )
                if res.status == 200:
                    self.answered.add(iid)
        self._note(record("GET /metrics", lambda: c.get("/metrics")))
        self._note(record("GET /runs", lambda: c.get("/runs", params={"limit": 5})))

    def count(self, status: int) -> int:
        return sum(1 for s in self.seen if s.status == status)

    def statuses(self) -> list[int]:
        return [s.status for s in self.seen]


def check_responses(seen: list[Seen]) -> None:
    """Every response is a success, an expected refusal, or a 503 telling to retry."""
    allowed = {
        "POST /runs": {202},
        "POST resolve": {200, 409},  # 409: answered already, by a try that timed out
        "GET /interrupts": {200},
        "GET /metrics": {200},
        "GET /runs": {200},
    }
    for s in seen:
        assert s.status != 0, f"{s.what}: the connection failed: {s.error}"
        assert s.status != 500, f"{s.what}: 500 {s.body}"
        if s.status == 503:
            assert s.headers.get("content-type", "").startswith("application/json"), s
            assert s.body["error"]["code"] == "redis_unavailable", s.body
            assert int(s.headers["retry-after"]) > 0, s.headers
            continue
        assert s.status in allowed[s.what], f"{s.what}: {s.status} {s.body}"


def fault(server: RedisServer, kind: str, *, hold_s: float = 3.0) -> None:
    """Takes Redis away for ``hold_s``, then back: ``crash`` (SIGKILL, restarted from
    its append-only file), ``full`` (``maxmemory`` just above what it uses,
    ``noeviction``), ``readonly`` (demoted to a replica) or ``stall`` (SIGSTOP, longer
    than the timeouts)."""
    if kind == "crash":
        server.crash()
        time.sleep(hold_s)
        server.start()
    elif kind == "stall":
        server.pause()
        time.sleep(hold_s)
        server.resume()
    elif kind == "full":
        fill(server)
        time.sleep(hold_s)
        unfill(server)
    elif kind == "readonly":
        # a replica of a primary that is not there: reads work, writes get READONLY
        client = server.client(socket_timeout=5)
        try:
            client.replicaof("127.0.0.1", str(free_port()))
            time.sleep(hold_s)
            client.replicaof("NO", "ONE")
        finally:
            client.close()
    else:
        raise ValueError(kind)


FILLER = "outage-filler"


def fill(server: RedisServer) -> None:
    """Sets ``maxmemory`` just above the memory in use and fills it, so every write
    command is refused with OOM (reads still work)."""
    client = server.client(socket_timeout=5)
    try:
        client.config_set("maxmemory-policy", "noeviction")
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory", str(used + 256 * 1024))
        n = 0
        while True:
            try:
                client.set(f"{FILLER}:{n}", b"x" * 16384)
            except redis.OutOfMemoryError:
                return
            n += 1
    finally:
        client.close()


def unfill(server: RedisServer) -> None:
    client = server.client(socket_timeout=5)
    try:
        client.config_set("maxmemory", "0")
        for key in client.scan_iter(match=f"{FILLER}:*", count=1000):
            client.delete(key)
    finally:
        client.close()


def wait_applied(load: Load, server: RedisServer, prefix: str) -> None:
    """Every run that got 202 succeeds with its answer, which was applied once.

    Applied once: one ``run.resumed`` per run (begin attempt moved it from interrupted
    once) and one ``interrupt.resolved``. A node runs once, except the node an outage
    cut off (its side effect done, its checkpoint not written), which the recovery
    attempt runs again, as after a worker crash: so the graph's counters may exceed one
    only by the run's recovery attempts (beyond its start and its resume).
    """
    load.halt()
    load.starting = False
    api = httpx.Client(base_url=load.client.base_url, timeout=30)
    client = server.client(decode_responses=True)
    try:

        def all_done() -> bool:
            load.step()  # answers what is still pending (retries of 503s)
            statuses = [api.get(f"/runs/{rid}").json()["status"] for rid in load.accepted]
            assert "failed" not in statuses, statuses
            return all(s == "succeeded" for s in statuses)

        wait_until(all_done, "every accepted run to succeed", deadline_s=120)
        for run_id, thread_id in load.accepted.items():
            run = api.get(f"/runs/{run_id}").json()
            assert run["output"]["values"]["answer"] == 1, run
            body = api.get(f"/runs/{run_id}/events").text
            types = [line[7:] for line in body.splitlines() if line.startswith("event: ")]
            for once in ("run.started", "run.resumed", "interrupt.resolved", "run.succeeded"):
                assert types.count(once) == 1, (run_id, types)
            recoveries = run["attempts"] - 2
            counts = [int(client.get(f"{prefix}:test:{w}:{thread_id}") or 0) for w in NODES]
            assert all(n >= 1 for n in counts), (run_id, counts)
            assert sum(counts) - len(counts) <= recoveries, (run_id, counts, run["attempts"])
    finally:
        api.close()
        client.close()


NODES = ("answered", "after")  # tests/graphs.py counter: one count per node run
