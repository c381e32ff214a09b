"""Traces and JSON logs, from real API and worker processes.

The processes export their spans over OTLP/HTTP to a receiver the test runs
(tests/otlp.py), as they would to a collector; the test checks that one run is one trace
whose parent links connect the answer, the queue hop and the worker's resume.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from broker.core.keys import Keys
from broker.core.telemetry import wanted
from tests import flow
from tests.harness import Broker, Proc, wait_until
from tests.otlp import Receiver, Span

pytestmark = pytest.mark.slow

SERVER, PRODUCER, CONSUMER = 2, 4, 5
# the trace of whoever answers: the answer's span links to it
CALLER_TRACE, CALLER_SPAN = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
OTEL = (
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
)


def _broker(redis_url: str, prefix: str, tmp_path: Path, **env: str) -> Broker:
    b = Broker(redis_url, prefix, tmp_path, BROKER_LOG_FORMAT="json", **env)
    for name in OTEL:
        if name not in env:
            b.env.pop(name, None)
    return b


def _answered_run(b: Broker) -> tuple[str, dict[str, Any]]:
    """Starts a worker (logging at debug, so arq's lines about each job show) and the
    API, runs ``counter`` to its question, answers it with the caller's traceparent,
    waits for the resumed run to succeed, and stops both processes."""
    b.start_worker("--log-level", "debug")
    b.start_api()
    b.wait_ready()
    try:
        with httpx.Client(base_url=b.url, timeout=30) as api:
            run_id = flow.start(api, "counter", {})["run_id"]
            flow.wait_status(api, run_id, "interrupted")
            [h] = flow.pending(api, run_id)
            r = api.post(
                f"/interrupts/{h['id']}/resolve",
                json={"value": "yes"},
                headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"},
            )
            assert r.status_code == 200, r.text
            flow.wait_status(api, run_id, "succeeded")
    finally:
        b.stop()  # each process exports what it still holds as it stops
    return run_id, h


def _lines(proc: Proc | None) -> list[dict[str, Any]]:
    """Every line the process wrote, each parsed as one JSON object."""
    assert proc is not None
    out = []
    for line in proc.output().splitlines():
        if line.strip():
            record = json.loads(line)
            assert isinstance(record, dict), line
            assert {"time", "level", "logger", "message"} <= record.keys(), line
            datetime.fromisoformat(record["time"])
            out.append(record)
    return out


def _one(spans: list[Span]) -> Span:
    assert len(spans) == 1, spans
    return spans[0]


def test_one_trace_follows_a_run_through_the_api_the_queue_and_the_worker(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    with Receiver().serving() as rx:
        b = _broker(
            redis_url,
            prefix,
            tmp_path,
            OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint,
            OTEL_BSP_SCHEDULE_DELAY="100",
        )
        run_id, h = _answered_run(b)
        wait_until(lambda: rx.named("node after"), "the resumed attempt's spans")

    # the request that started the run is its root span (FastAPI's server span)
    root = _one(rx.named("POST /runs", run_id=run_id))
    trace_id = root.trace_id
    assert (root.service, root.kind, root.parent_id) == ("interrupt-broker-api", SERVER, "")
    assert root.attributes["http.route"] == "/runs"
    # readiness probes (the harness polls /readyz) get no span
    assert not rx.named("GET /readyz")
    assert rx.named("GET /runs/{run_id}")
    # the run's spans, from both processes, are one trace; the request that answered
    # is in the caller's trace (and is linked from the run's)
    request = _one(rx.named("POST /interrupts/{interrupt_id}/resolve"))
    assert (request.trace_id, request.parent_id) == (CALLER_TRACE, CALLER_SPAN)
    assert request.attributes["run_id"] == run_id
    assert {s.trace_id for s in rx.spans if s.attributes.get("run_id") == run_id} == {
        trace_id,
        CALLER_TRACE,
    }
    assert Counter(s.name for s in rx.spans if s.trace_id == trace_id) == {
        "POST /runs": 1,
        "queue advance": 2,
        "advance": 2,
        "node ask": 2,
        "node after": 1,
        "interrupt.resolve": 1,
        "interrupt.wait": 1,
    }

    first, resumed = sorted(rx.named("advance", run_id=run_id), key=lambda s: s.start_ns)
    assert {first.service, resumed.service} == {"interrupt-broker-worker"}
    assert first.kind == resumed.kind == CONSUMER
    assert first.attributes["prior_status"] == "queued"
    assert resumed.attributes["prior_status"] == "interrupted"
    queued = {s.span_id: s for s in rx.named("queue advance")}
    assert all(s.kind == PRODUCER for s in queued.values())

    # POST /runs -> queue -> first attempt
    start_hop = queued[first.parent_id]
    assert start_hop.parent_id == root.span_id
    assert start_hop.attributes["job_id"] == first.attributes["job_id"]
    assert first.attributes["job_id"].startswith(f"advance:{run_id}:start")

    # the answer: under the attempt that asked, linked to the request's span, which is
    # in the trace of whoever answered
    answer = _one(rx.named("interrupt.resolve", interrupt_id=h["id"]))
    assert (answer.service, answer.parent_id) == ("interrupt-broker-api", first.span_id)
    assert answer.attributes["run_id"] == run_id
    assert answer.attributes["channel"] == "rest"
    assert answer.links == [(request.trace_id, request.span_id)]
    # answer -> queue -> resumed attempt
    resume_hop = queued[resumed.parent_id]
    assert resume_hop.parent_id == answer.span_id
    assert resumed.attributes["job_id"] == resume_hop.attributes["job_id"]
    assert h["id"] in resumed.attributes["job_id"]

    # the wait: from the interrupt's creation, under the attempt that asked
    k = Keys(prefix)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        stored_h = client.hgetall(k.interrupt(h["id"]))
        stored_run = client.hgetall(k.run(run_id))
    finally:
        client.close()
    wait = _one(rx.named("interrupt.wait", interrupt_id=h["id"]))
    assert wait.parent_id == first.span_id
    assert wait.start_ns // 1_000_000 == int(stored_h["created_ms"])
    # the records keep the context their later spans continue
    assert stored_run["trace"].startswith(f"00-{trace_id}-{root.span_id}-")
    assert stored_h["trace"].startswith(f"00-{trace_id}-{first.span_id}-")

    # a span per graph task, under its attempt
    asked = rx.named("node ask")
    assert {(s.parent_id, s.attributes["langgraph.interrupted"]) for s in asked} == {
        (first.span_id, True),
        (resumed.span_id, False),
    }
    assert _one(rx.named("node after")).parent_id == resumed.span_id

    # log lines written inside a span carry its ids
    ended = [
        line
        for line in _lines(b.workers[0])
        if line["message"] == f"run {run_id}: resumed-succeeded"
    ]
    assert ended and ended[0]["trace_id"] == trace_id
    assert ended[0]["span_id"] == resumed.span_id
    assert ended[0]["job_id"] == resumed.attributes["job_id"]
    answered = [line for line in _lines(b.api) if f"{h['id']}/resolve" in line["message"]]
    assert answered and (answered[0]["trace_id"], answered[0]["span_id"]) == (
        request.trace_id,
        request.span_id,
    )


def test_a_resume_queued_without_a_span_continues_under_the_runs_root(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    # the deadline pass answers with the default: its job carries no context, so the
    # resumed attempt takes the run record's
    with Receiver().serving() as rx:
        b = _broker(
            redis_url,
            prefix,
            tmp_path,
            OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint,
            OTEL_BSP_SCHEDULE_DELAY="100",
        )
        with b.serving(), httpx.Client(base_url=b.url, timeout=30) as api:
            run_id = flow.start(api, "expiring", {})["run_id"]
            flow.wait_status(api, run_id, "succeeded")
    root = _one(rx.named("POST /runs", run_id=run_id))
    first, resumed = sorted(rx.named("advance", run_id=run_id), key=lambda s: s.start_ns)
    assert resumed.attributes["prior_status"] == "interrupted"
    assert "expiry:" in resumed.attributes["job_id"]
    assert (resumed.trace_id, resumed.parent_id) == (root.trace_id, root.span_id)
    assert first.trace_id == root.trace_id
    assert not rx.named("interrupt.resolve") and not rx.named("interrupt.wait")


def test_without_tracing_nothing_is_exported_and_logs_are_json_lines_with_ids(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    # an endpoint is set, but OTEL_SDK_DISABLED wins: no exporter, no context anywhere
    with Receiver().serving() as rx:
        b = _broker(
            redis_url,
            prefix,
            tmp_path,
            OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint,
            OTEL_BSP_SCHEDULE_DELAY="100",
            OTEL_SDK_DISABLED="true",
        )
        run_id, h = _answered_run(b)
    assert (rx.posts, rx.spans) == (0, [])
    k = Keys(prefix)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert "trace" not in client.hgetall(k.run(run_id))
        assert "trace" not in client.hgetall(k.interrupt(h["id"]))
    finally:
        client.close()

    thread_id = h["thread_id"]
    ids = {"run_id": run_id, "thread_id": thread_id, "agent_id": "counter"}
    api = _lines(b.api)
    assert not any("trace_id" in line for line in api)
    # uvicorn's access lines carry what the request was about
    started = [line for line in api if "POST /runs " in line["message"]]
    assert started and ids.items() <= started[0].items()
    answered = [line for line in api if f"/interrupts/{h['id']}/resolve" in line["message"]]
    assert answered and {**ids, "interrupt_id": h["id"]}.items() <= answered[0].items()
    assert answered[0]["logger"] == "uvicorn.access"

    # the worker's lines about each job, arq's own included, carry the job's ids
    worker = _lines(b.workers[0])
    jobs = [line for line in worker if line.get("run_id") == run_id]
    assert {line["logger"] for line in jobs} >= {"arq.worker", "worker.runner"}
    assert all(ids.items() <= line.items() for line in jobs)
    assert {line["job_id"] for line in jobs} == {
        f"advance:{run_id}:start|{thread_id}/counter",
        f"advance:{run_id}:{h['id']}|{thread_id}/counter",
    }


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, False),
        ({"OTEL_SERVICE_NAME": "broker"}, False),
    ],
)
def test_the_otel_variables_decide_whether_traces_are_exported(
    env: dict[str, str], on: bool
) -> None:
    assert wanted(env) is on


@pytest.mark.parametrize(
    "env",
    [
        {"OTEL_TRACES_EXPORTER": "jaeger"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
    ],
)
def test_an_exporter_the_broker_does_not_have_is_refused(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="OTEL_"):
        wanted(env)
