"""Prometheus metrics: GET /metrics on the API (totals that follow the store, and the
process's own counters) and a worker's own metrics on BROKER_WORKER_METRICS_PORT, both
parsed with prometheus_client's parsers."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from broker.core import signing
from tests.flow import answer, next_interrupt, start, wait_status
from tests.harness import Broker, Proc, broker_env, free_port, wait_until
from tests.receiver import Receiver, running

pytestmark = pytest.mark.slow

Samples = dict[str, float]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with running() as r:
        yield r


@pytest.fixture(scope="module")
def broker(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory, receiver: Receiver
) -> Iterator[Broker]:
    """An API and a worker serving its metrics, with one webhook that takes deliveries
    and one that always fails (its delivery job is retried once, then given up)."""
    hooks = [
        {
            "id": f"{name}",
            "url": f"{receiver.url}/{name}/metrics",
            "secret": signing.new_secret(),
            "events": ["interrupt.created"],
            "agents": ["counter"],
        }
        for name in ("ok", "fail")
    ]
    b = Broker(
        redis_url,
        f"ibt{uuid.uuid4().hex[:10]}",
        tmp_path_factory.mktemp("metrics"),
        BROKER_WORKER_METRICS_PORT=str(free_port()),
        BROKER_WEBHOOKS=json.dumps(hooks),
        BROKER_WEBHOOK_ALLOW_PRIVATE="1",
        BROKER_WEBHOOK_BACKOFF_S="0.05",
        BROKER_WEBHOOK_MAX_ATTEMPTS="2",
        BROKER_LINK_SECRET=signing.new_secret(),
    )
    b.env["BROKER_PUBLIC_URL"] = b.url
    with b.serving():
        yield b


def _samples(text: str) -> Samples:
    """Every sample as ``name{label="value",...}`` (labels sorted) -> value."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def _scrape(api: httpx.Client) -> Samples:
    r = api.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"] == CONTENT_TYPE_PLAIN_0_0_4
    return _samples(r.text)


def _worker_url(broker: Broker) -> str:
    return f"http://127.0.0.1:{broker.env['BROKER_WORKER_METRICS_PORT']}/metrics"


def _scrape_worker(broker: Broker) -> Samples:
    r = httpx.get(_worker_url(broker), timeout=10)
    assert r.status_code == 200
    return _samples(r.text)


def _moved(after: Samples, before: Samples, name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


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


def test_api_metrics_are_typed_families_with_the_process_figures(api: httpx.Client) -> None:
    r = api.get("/metrics")
    types = {f.name: f.type for f in text_string_to_metric_families(r.text)}
    for gauge in ("broker_interrupts", "broker_runs", "broker_runs_due", "broker_workers_alive"):
        assert types[gauge] == "gauge"
    assert types["broker_events_stream_length"] == "gauge"
    assert types["broker_answers"] == "counter"
    assert types["process_cpu_seconds"] == "counter"  # this API process's own
    # a scraper asking for OpenMetrics gets it
    om = api.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert {f.name for f in openmetrics_families(om.text)} >= {"broker_runs", "broker_answers"}


def _link_for(receiver: Receiver, interrupt_id: str, choice: str) -> str:
    def mail() -> str | None:
        for got in receiver.at("/ok/metrics"):
            data = json.loads(got.body)["data"]
            if data["interrupt_id"] == interrupt_id:
                return next(link["url"] for link in data["links"] if link["choice"] == choice)
        return None

    url: str = wait_until(mail, f"the webhook for {interrupt_id}")
    return url


def test_answers_resumes_attempts_and_deliveries_are_counted(
    api: httpx.Client, broker: Broker, receiver: Receiver
) -> None:
    api_before, worker_before = _scrape(api), _scrape_worker(broker)

    # one run answered over REST, then answered again (refused: 409)
    run = start(api, "counter", {})
    question = next_interrupt(api, run["run_id"])
    answer(api, question["id"], "yes")
    again = api.post(f"/interrupts/{question['id']}/resolve", json={"value": "no"})
    assert again.status_code == 409
    wait_status(api, run["run_id"], "succeeded")

    # another answered from the webhook's action link
    linked = start(api, "counter", {})
    asked = next_interrupt(api, linked["run_id"])
    url = _link_for(receiver, asked["id"], "approve")
    token = url.rsplit("/", 1)[1]
    assert httpx.post(url, data={"token": token}, timeout=30).status_code == 200
    wait_status(api, linked["run_id"], "succeeded")

    api_after = _scrape(api)
    answers = "broker_answers_total"
    assert _moved(api_after, api_before, f'{answers}{{channel="rest",outcome="accepted"}}') == 1
    refused = f'{answers}{{channel="rest",outcome="already_resolved"}}'
    assert _moved(api_after, api_before, refused) == 1
    assert _moved(api_after, api_before, f'{answers}{{channel="link",outcome="accepted"}}') == 1

    # each run: a first attempt to its question, one resumed by its answer
    def worker_moved() -> Samples | None:
        got = _scrape_worker(broker)
        attempts = 'broker_attempt_seconds_count{agent="counter"}'
        return got if _moved(got, worker_before, attempts) >= 4 else None

    worker_after: Samples = wait_until(worker_moved, "the attempts to be observed")
    resumes = 'broker_answer_resume_seconds_count{agent="counter"}'
    assert _moved(worker_after, worker_before, resumes) == 2
    assert worker_after['broker_answer_resume_seconds_bucket{agent="counter",le="+Inf"}'] >= 2
    waits = 'broker_interrupt_wait_seconds_count{agent="counter",type="approval"}'
    assert _moved(worker_after, worker_before, waits) == 2
    assert worker_after['broker_interrupt_wait_seconds_sum{agent="counter",type="approval"}'] > 0

    # the interrupts' webhooks: delivered to one subscription; the other fails, its job is
    # retried once and then given up
    def delivered() -> Samples | None:
        got = _scrape_worker(broker)
        ok = 'broker_webhook_delivery_seconds_count{outcome="delivered"}'
        gave_up = 'broker_webhook_delivery_seconds_count{outcome="gave_up"}'
        done = _moved(got, worker_before, ok) >= 2 and _moved(got, worker_before, gave_up) >= 2
        return got if done else None

    deliveries: Samples = wait_until(delivered, "the webhook deliveries to be observed")
    failed = 'broker_webhook_delivery_seconds_count{outcome="failed"}'
    assert _moved(deliveries, worker_before, failed) >= 2
    assert _moved(deliveries, worker_before, "broker_jobs_retried_total") >= 2
    assert "broker_jobs_failed_total" in deliveries


def test_worker_metrics_parse_as_typed_families(broker: Broker) -> None:
    r = httpx.get(_worker_url(broker), timeout=10)
    assert r.headers["content-type"] == CONTENT_TYPE_PLAIN_0_0_4
    types: dict[str, Any] = {f.name: f.type for f in text_string_to_metric_families(r.text)}
    for histogram in (
        "broker_answer_resume_seconds",
        "broker_interrupt_wait_seconds",
        "broker_attempt_seconds",
        "broker_webhook_delivery_seconds",
    ):
        assert types[histogram] == "histogram"
    assert types["broker_jobs_retried"] == types["broker_jobs_failed"] == "counter"


def test_a_worker_whose_metrics_port_is_taken_refuses_to_start(
    redis_url: str, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = broker_env(redis_url, f"ibt{uuid.uuid4().hex[:10]}")
        env["BROKER_WORKER_METRICS_PORT"] = str(port)
        worker = Proc(["worker"], env, tmp_path / "worker.log")
        try:
            code = worker.p.wait(60)
        finally:
            worker.stop()
    assert code == 2
    assert f"BROKER_WORKER_METRICS_PORT={port}" in worker.output()
