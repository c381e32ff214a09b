"""One run's trace as OTel's in-memory span exporter records it (docs/design.md,
"Traces and logs"): the answer's span, the queue hop it carries in the arq job, and the
worker's resumed attempt are one trace, each under the one before. The store, the
channel and the runner run in this process, against real Redis; only the exporter is
in memory (tests/test_telemetry.py follows the same trace across real processes)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypedDict

import pytest
import redis.asyncio as aioredis
from arq.connections import ArqRedis
from arq.jobs import deserialize_job
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from broker.core import channel, telemetry
from broker.core.keys import Keys
from broker.core.records import Channel
from broker.core.saver import RedisCheckpointSaver
from broker.core.settings import Settings
from broker.core.store import Store
from worker.runner import Runner


class State(TypedDict, total=False):
    answer: Any


def _ask(state: State) -> dict[str, Any]:
    return {"answer": interrupt({"type": "approval", "content": "go?"})}


def _graph() -> Any:
    g = StateGraph(State)
    g.add_node("ask", _ask)
    g.add_edge(START, "ask")
    g.add_edge("ask", END)
    return g.compile()


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Tracing on in this process, into memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(telemetry, "ENABLED", True)
    monkeypatch.setattr(telemetry, "_tracer", provider.get_tracer("test"))
    yield exporter
    provider.shutdown()


def _one(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    [span] = [s for s in spans if s.name == name]
    return span


async def _job_kwargs(
    r: aioredis.Redis, binary: aioredis.Redis, queue: ArqRedis, keys: Keys
) -> tuple[str, dict[str, Any]]:
    """The one queued job's id and kwargs, as a worker reads them."""
    [job_id] = await r.zrange(keys.queue, 0, -1)
    payload = await binary.get(keys.arq_job_prefix + job_id)
    job = deserialize_job(payload, deserializer=queue.job_deserializer)
    return job_id, job.kwargs


async def test_the_answer_the_queue_hop_and_the_resume_are_one_trace(
    spans: InMemorySpanExporter, settings: Settings, redis_url: str, queue: ArqRedis
) -> None:
    text = aioredis.Redis.from_url(redis_url, decode_responses=True)
    binary = aioredis.Redis.from_url(redis_url)
    try:
        store = Store(text, settings)
        runner = Runner(
            store, {"ask": _graph()}, RedisCheckpointSaver(binary, store.keys), settings
        )
        run = await store.create_run("ask", None, {}, {})
        telemetry.received(None)
        assert (await runner.advance(run.id, "start")).endswith("interrupted")
        [pending] = await store.pending_interrupts(run.id)

        # the request that carries the answer: its own trace, as a caller's would be
        tracer = telemetry._tracer
        with tracer.start_as_current_span("POST /interrupts/{id}/resolve") as request:
            await channel.answer(store, queue, pending.id, True, channel=Channel.REST)
        job_id, kwargs = await _job_kwargs(text, binary, queue, store.keys)
        assert "traceparent" in kwargs["trace"]  # the hop's context rides in the job

        # the worker takes the job: its attempt continues what the job carried
        telemetry.received(kwargs["trace"])
        assert (await runner.advance(run.id, job_id)).endswith("succeeded")
    finally:
        for client in (text, binary):
            await client.aclose()

    done = spans.get_finished_spans()
    first, resumed = sorted((s for s in done if s.name == "advance"), key=lambda s: s.start_time)
    resolve = _one(done, "interrupt.resolve")
    hop = _one(done, "queue advance")
    wait = _one(done, "interrupt.wait")
    trace_id = first.context.trace_id
    # one trace: the attempt that asked, the answer, its wait, the hop, the resume
    assert {s.context.trace_id for s in (first, resolve, wait, hop, resumed)} == {trace_id}
    assert resolve.parent.span_id == first.context.span_id
    assert hop.parent.span_id == resolve.context.span_id
    assert hop.kind == SpanKind.PRODUCER and resumed.kind == SpanKind.CONSUMER
    assert resumed.parent.span_id == hop.context.span_id
    assert resumed.attributes["job_id"] == job_id
    # the request stays in its caller's trace, linked from the answer
    assert [link.context.span_id for link in resolve.links] == [request.get_span_context().span_id]
    assert wait.start_time == pending.created_ms * 1_000_000
