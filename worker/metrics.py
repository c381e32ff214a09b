"""The worker's own metrics, and the HTTP server that exposes them.

Every figure is observed in this process's memory (prometheus_client's default
registry): recording one adds no Redis round trip to an attempt or a delivery. With
``BROKER_WORKER_METRICS_PORT`` set, the worker serves them at ``/metrics`` on that port
(prometheus_client's own server, in a thread); each worker process needs its own port.
Labels are bounded: agent ids come from the configured graphs, interrupt types from
those graphs' questions, outcomes from a fixed list; never a run or interrupt id.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import Any

from prometheus_client import Counter, Histogram, start_http_server

from broker.core.records import InterruptRecord
from broker.core.settings import Settings

log = logging.getLogger("worker.metrics")

# Seconds, from a machine's pace to a person's.
FAST = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
SLOW = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
HOUR, DAY = 3600.0, 86400.0
HUMAN = (1.0, 10.0, 30.0, 60.0, 300.0, 900.0, HOUR, 4 * HOUR, 12 * HOUR, DAY, 3 * DAY, 7 * DAY)

ANSWER_TO_RESUME = Histogram(
    "broker_answer_resume_seconds",
    "From an answer's resolution to the worker beginning the attempt that resumes its run.",
    ["agent"],
    buckets=FAST,
)
INTERRUPT_WAIT = Histogram(
    "broker_interrupt_wait_seconds",
    "From an interrupt's creation to its resolution, observed as its run resumes.",
    ["agent", "type"],
    buckets=HUMAN,
)
ATTEMPT = Histogram(
    "broker_attempt_seconds",
    "Duration of an attempt at a run: the graph from where it starts to where it stops.",
    ["agent"],
    buckets=SLOW,
)
WEBHOOK_DELIVERY = Histogram(
    "broker_webhook_delivery_seconds",
    "Duration of one webhook delivery attempt, by outcome.",
    ["outcome"],
    buckets=FAST,
)
JOBS_RETRIED = Counter("broker_jobs_retried", "Jobs this worker handed back to be run again.")
JOBS_FAILED = Counter("broker_jobs_failed", "Jobs that failed for good on this worker.")

_served: tuple[str, int] | None = None
_lock = threading.Lock()


def serve(settings: Settings) -> None:
    """Starts the metrics server once per process, when a port is set; a port already
    taken stops the worker's start, naming the setting."""
    global _served
    port = settings.worker_metrics_port
    if not port:
        return
    with _lock:
        if _served is not None:
            return
        host = settings.worker_metrics_host
        try:
            start_http_server(port, addr=host)
        except OSError as exc:
            raise RuntimeError(
                f"BROKER_WORKER_METRICS_PORT={port} on {host}: cannot serve metrics ({exc}); "
                "each worker on a host needs a port of its own"
            ) from exc
        _served = (host, port)
    log.info("worker metrics at http://%s:%d/metrics", host, port)


def _ms(iso_time: Any) -> int | None:
    if not isinstance(iso_time, str):
        return None
    try:
        return int(datetime.fromisoformat(iso_time).timestamp() * 1000)
    except ValueError:
        return None


def resumed(agent_id: str, answers: list[InterruptRecord], now_ms: int) -> None:
    """Observes, for each answer a resuming attempt applies, how long the run waited for
    it after it was resolved, and how long its interrupt waited for an answer."""
    for h in answers:
        resolved = _ms((h.resolution or {}).get("resolved_at"))
        if resolved is None:
            continue
        ANSWER_TO_RESUME.labels(agent=agent_id).observe(max(0, now_ms - resolved) / 1000)
        if h.created_ms:
            wait = max(0, resolved - h.created_ms) / 1000
            INTERRUPT_WAIT.labels(agent=agent_id, type=h.type or "").observe(wait)


def attempt(agent_id: str, started: float) -> None:
    """Observes an attempt that began at ``started`` (``time.monotonic()``)."""
    ATTEMPT.labels(agent=agent_id).observe(time.monotonic() - started)


def delivery(outcome: str, seconds: float) -> None:
    WEBHOOK_DELIVERY.labels(outcome=outcome).observe(seconds)
