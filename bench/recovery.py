"""Worker death → run done: how long a run waits when its worker is killed mid-node.

Two worker processes and the API run against one Redis. Each try starts a run of a graph
whose one node takes ``--node-seconds``, waits until the node has begun, SIGKILLs the
worker holding the thread's lease, and times kill → ``succeeded`` as the API reports it
(the node runs again from its start on the other worker, so the figure includes it).
A fresh worker replaces the killed one before the next try.

    uv run python -m bench.recovery [--tries 4] [--lease-ttl 10] [--heartbeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import redis

from bench._common import redis_url
from broker.core.keys import Keys
from tests.flow import run_state, start, wait_status
from tests.harness import Broker, delete_prefix, wait_until
from worker.liveness import DEAD_AFTER_BEATS
from worker.locks import holder_of


def _began(client: redis.Redis, prefix: str, thread_id: str) -> bool:
    return bool(client.get(f"{prefix}:test:began:{thread_id}"))


def one_try(b: Broker, api: httpx.Client, client: redis.Redis, node_s: float) -> float:
    prefix = b.env["BROKER_KEY_PREFIX"]
    run = start(api, "slow", {"seconds": node_s})
    thread = run["thread_id"]
    wait_until(lambda: _began(client, prefix, thread), "the node to begin")
    token = client.get(Keys(prefix).thread_lease(thread))
    assert token, "the node runs under a lease"
    pid = int(holder_of(token.decode()).split(":")[-2])
    [victim] = [w for w in b.workers if w.p.pid == pid and w.p.poll() is None]
    killed = time.monotonic()
    victim.kill()
    b.workers.remove(victim)

    def done() -> bool:
        return run_state(api, run["run_id"])["status"] in ("succeeded", "failed")

    wait_until(done, "the run to finish", deadline_s=600)
    took = time.monotonic() - killed
    assert wait_status(api, run["run_id"], "succeeded")["status"] == "succeeded"
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tries", type=int, default=4)
    ap.add_argument("--node-seconds", type=float, default=5.0)
    ap.add_argument("--lease-ttl", type=float, default=10.0)
    ap.add_argument("--heartbeat", type=float, default=5.0)
    ap.add_argument("--reconcile-interval", type=float, default=5.0)
    ap.add_argument("--job-timeout", type=int, default=300)
    args = ap.parse_args()
    env = {
        "BROKER_LEASE_TTL_S": str(args.lease_ttl),
        "BROKER_WORKER_HEARTBEAT_S": str(args.heartbeat),
        "BROKER_RECONCILE_INTERVAL_S": str(args.reconcile_interval),
        "BROKER_JOB_TIMEOUT_S": str(args.job_timeout),
    }
    print(
        f"lease ttl {args.lease_ttl:g} s (renewed every {args.lease_ttl / 3:.2f} s), "
        f"heartbeat {args.heartbeat:g} s (dead after {DEAD_AFTER_BEATS * args.heartbeat:g} s), "
        f"reconcile every {args.reconcile_interval:g} s, job timeout {args.job_timeout} s, "
        f"node {args.node_seconds:g} s"
    )
    settle_s = args.lease_ttl + args.heartbeat  # the workers have watched Redis for a while
    with redis_url() as url, tempfile.TemporaryDirectory() as tmp:
        prefix = f"benchrec{uuid.uuid4().hex[:6]}"
        b = Broker(url, prefix, Path(tmp), **env)
        client = redis.Redis.from_url(url)
        try:
            b.start_worker()
            b.start_worker()
            b.start_api()
            b.wait_ready()
            samples = []
            with httpx.Client(base_url=b.url, timeout=30) as api:
                for n in range(args.tries):
                    time.sleep(settle_s)
                    took = one_try(b, api, client, args.node_seconds)
                    samples.append(took)
                    print(f"try {n + 1}: kill → run done {took:6.2f} s", flush=True)
                    b.start_worker()
            print(
                f"kill → run done over {len(samples)} tries: min {min(samples):.2f} s, "
                f"mean {statistics.fmean(samples):.2f} s, max {max(samples):.2f} s"
            )
        finally:
            b.stop()
            client.close()
            delete_prefix(url, prefix)


if __name__ == "__main__":
    main()
