"""Recovery time of the broker across a Sentinel failover, with runs in flight.

Starts a private primary, two replicas and three sentinels, the API and two workers
on the ``redis+sentinel://`` URL, then drives ``--runs`` runs of the ``counter`` graph
(two concurrent answers per interrupt, every request retried on 503 with its
Idempotency-Key) and fails the primary over once a third of them were started:
``SENTINEL FAILOVER`` (graceful) and/or a SIGKILL of the primary. Prints when the
sentinels named the new primary, when the first write started after that was
acknowledged, and when every run was done, all from the start of the failover; and
whether anything acknowledged was lost.

    uv run python -m bench.failover [--runs 200] [--fault graceful kill] [--env NAME=value …]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections import Counter
from pathlib import Path

from tests.failover_load import Ledger, asked_again, drive, final_answers, report
from tests.sentinel_cluster import SentinelCluster, count, deployment
from tests.servers import RedisServer


def once(fault_kind: str, runs: int, workdir: Path, **env: str) -> str:
    cluster = SentinelCluster(workdir / "redis").start()
    counts = RedisServer(workdir / "counts").start()
    ledger = Ledger()
    old = cluster.primary.port

    async def fault() -> None:
        if fault_kind == "graceful":
            ledger.failover_at = await asyncio.to_thread(cluster.failover)
        else:
            ledger.failover_at = time.monotonic()
            cluster.primary.crash()
        while (await asyncio.to_thread(cluster.primary_port)) in (old, None):
            await asyncio.sleep(0.05)
        ledger.switched_at = time.monotonic()

    try:
        with deployment(cluster, counts, workdir, **env) as broker:
            asyncio.run(
                drive(
                    broker.url,
                    runs,
                    fault=fault,
                    fault_after=runs // 3,
                    ledger=ledger,
                    verbose=True,
                )
            )
            final = asyncio.run(final_answers(broker.url, ledger))
            lost = sum(
                1
                for iid, h in final.items()
                if h.get("status") != "resolved" or h["resolution"]["value"] != ledger.answered[iid]
            )
            runs_of = Counter(
                (count(counts, "answered", t), count(counts, "after", t))
                for t in ledger.runs.values()
            )
            alive = sum(1 for w in broker.workers if w.p.poll() is None)
            succeeded = sum(1 for s in ledger.ended.values() if s == "succeeded")
    finally:
        counts.stop()
        cluster.stop()
    label = {"graceful": "SENTINEL FAILOVER", "kill": "SIGKILL of the primary"}[fault_kind]
    return (
        report(ledger, label)
        + f"\n  succeeded {succeeded}/{runs}, vanished {len(ledger.vanished)}, "
        f"answered-then-pending {len(ledger.reasked)}, answers lost {lost}, "
        f"two winners {len(ledger.double_wins)}, asked twice {len(asked_again(ledger))}, "
        f"(resumed node, node after) runs: {dict(runs_of)}, "
        f"workers alive {alive}/2, other errors {len(ledger.unexpected)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument(
        "--fault", nargs="+", default=["graceful", "kill"], choices=["graceful", "kill"]
    )
    parser.add_argument(
        "--env", nargs="*", default=[], help="NAME=value settings for the broker's processes"
    )
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    results = []
    for kind in args.fault:
        with tempfile.TemporaryDirectory(prefix="bench-failover-") as tmp:
            results.append(once(kind, args.runs, Path(tmp), **env))
    print()
    print("\n".join(results))


if __name__ == "__main__":
    main()
