"""GET /metrics: totals read from Redis, so every API replica reports the same ones, and
this process's own metrics (answers counted here, the Python process's figures)."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse
from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from broker.api.deps import Reader, StoreDep
from broker.api.openapi import REDIS, SCOPE, error_responses
from broker.core import auth, errors
from broker.core.codec import now_ms
from broker.core.records import InterruptStatus, RunStatus
from broker.core.store import Store

router = APIRouter(tags=["health"])

INTERRUPT_STATUSES = [s.value for s in InterruptStatus]
RUN_STATUSES = [s.value for s in RunStatus]


class RedisTotals:
    """A collector of the gauges read from Redis for one scrape: interrupts and runs by
    status, runs due, live workers, the event stream's length."""

    def __init__(self, got: list[int]) -> None:
        self.got = got

    @classmethod
    async def read(cls, store: Store) -> RedisTotals:
        """The figures, in one round trip."""
        k = store.keys
        async with store.r.pipeline(transaction=False) as pipe:
            for status in INTERRUPT_STATUSES:
                pipe.zcard(k.interrupts_by_status(status))
            for status in RUN_STATUSES:
                pipe.zcard(k.runs_by_status(status))
            pipe.zcard(k.runs_due)
            alive_since = now_ms() - int(store.settings.worker_heartbeat_s * 3000)
            pipe.zcount(k.workers, alive_since, "+inf")
            pipe.xlen(k.events)
            return cls(await pipe.execute())

    def collect(self) -> Iterator[Metric]:
        got = iter(self.got)
        interrupts = GaugeMetricFamily(
            "broker_interrupts", "Interrupts by status.", labels=["status"]
        )
        for status in INTERRUPT_STATUSES:
            interrupts.add_metric([status], next(got))
        runs = GaugeMetricFamily("broker_runs", "Runs by status.", labels=["status"])
        for status in RUN_STATUSES:
            runs.add_metric([status], next(got))
        yield interrupts
        yield runs
        yield GaugeMetricFamily(
            "broker_runs_due", "Runs with work no worker has finished.", value=next(got)
        )
        yield GaugeMetricFamily(
            "broker_workers_alive", "Workers with a recent heartbeat.", value=next(got)
        )
        yield GaugeMetricFamily(
            "broker_events_stream_length", "Entries in the global event stream.", value=next(got)
        )


class Scrape:
    """What one scrape renders: the Redis totals, then this process's registry."""

    def __init__(self, totals: RedisTotals) -> None:
        self.totals = totals

    def collect(self) -> Iterator[Metric]:
        yield from self.totals.collect()
        yield from REGISTRY.collect()


@router.get("/metrics", response_class=PlainTextResponse, responses=error_responses(*SCOPE, REDIS))
async def metrics(request: Request, store: StoreDep, principal: Reader) -> PlainTextResponse:
    """Prometheus metrics: interrupts and runs by status, due runs and live workers
    (read from Redis), and this API process's own counters and figures. The format
    follows the request's Accept header (Prometheus text, or OpenMetrics)."""
    if principal.agents is not None:
        # the totals count every agent's runs: a key limited to some must not see them
        raise errors.Forbidden(
            f"metrics cover every agent; the API key {principal.actor!r} is limited to some",
            scope=auth.READ,
        )
    totals = await RedisTotals.read(store)
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return PlainTextResponse(encode(Scrape(totals)), media_type=content_type)
