"""Prometheus metrics, read from Redis so every API replica reports the same totals."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from broker.api.deps import Reader, StoreDep
from broker.api.openapi import REDIS, SCOPE, error_responses
from broker.core import auth, errors
from broker.core.codec import now_ms
from broker.core.records import InterruptStatus, RunStatus

router = APIRouter(tags=["health"])

INTERRUPT_STATUSES = [s.value for s in InterruptStatus]
RUN_STATUSES = [s.value for s in RunStatus]


def _metric(lines: list[str], name: str, help_text: str, values: dict[str, float]) -> None:
    lines.append(f"# HELP {name} {help_text}")
    lines.append(f"# TYPE {name} gauge")
    for labels, value in values.items():
        lines.append(f"{name}{labels} {value:g}")


@router.get("/metrics", response_class=PlainTextResponse, responses=error_responses(*SCOPE, REDIS))
async def metrics(store: StoreDep, principal: Reader) -> PlainTextResponse:
    """Prometheus text format: interrupts and runs by status, due runs, live workers."""
    if principal.agents is not None:
        # the totals count every agent's runs: a key limited to some must not see them
        raise errors.Forbidden(
            f"metrics cover every agent; the API key {principal.actor!r} is limited to some",
            scope=auth.READ,
        )
    k = store.keys
    s = store.settings
    async with store.r.pipeline(transaction=False) as pipe:
        for status in INTERRUPT_STATUSES:
            pipe.zcard(k.interrupts_by_status(status))
        for status in RUN_STATUSES:
            pipe.zcard(k.runs_by_status(status))
        pipe.zcard(k.runs_due)
        pipe.zcount(k.workers, now_ms() - int(s.worker_heartbeat_s * 3000), "+inf")
        pipe.xlen(k.events)
        got = await pipe.execute()
    n_int = len(INTERRUPT_STATUSES)
    n_run = len(RUN_STATUSES)
    lines: list[str] = []
    _metric(
        lines,
        "broker_interrupts",
        "Interrupts by status.",
        {f'{{status="{st}"}}': v for st, v in zip(INTERRUPT_STATUSES, got[:n_int], strict=True)},
    )
    _metric(
        lines,
        "broker_runs",
        "Runs by status.",
        {
            f'{{status="{st}"}}': v
            for st, v in zip(RUN_STATUSES, got[n_int : n_int + n_run], strict=True)
        },
    )
    due, workers, events = got[n_int + n_run :]
    _metric(lines, "broker_runs_due", "Runs with work no worker has finished.", {"": due})
    _metric(lines, "broker_workers_alive", "Workers with a recent heartbeat.", {"": workers})
    _metric(
        lines, "broker_events_stream_length", "Entries in the global event stream.", {"": events}
    )
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
