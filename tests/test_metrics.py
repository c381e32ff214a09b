"""GET /metrics in Prometheus text format, with figures that follow the store."""

from __future__ import annotations

import httpx
import pytest

from tests.flow import answer, next_interrupt, start, wait_status

pytestmark = pytest.mark.slow


def _scrape(api: httpx.Client) -> dict[str, float]:
    r = api.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    out: dict[str, float] = {}
    for line in r.text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_metrics_follow_runs_and_interrupts(api: httpx.Client) -> None:
    before = _scrape(api)
    assert before["broker_workers_alive"] >= 1
    run = start(api, "counter", {})
    question = next_interrupt(api, run["run_id"])
    during = _scrape(api)
    pending = 'broker_interrupts{status="pending"}'
    resolved = 'broker_interrupts{status="resolved"}'
    assert during[pending] == before[pending] + 1
    assert during['broker_runs{status="interrupted"}'] >= 1
    answer(api, question["id"], "ok")
    wait_status(api, run["run_id"], "succeeded")
    after = _scrape(api)
    assert after[pending] == before[pending]
    assert after[resolved] == before[resolved] + 1
    assert after['broker_runs{status="succeeded"}'] == before['broker_runs{status="succeeded"}'] + 1
    assert after["broker_events_stream_length"] > before["broker_events_stream_length"]
