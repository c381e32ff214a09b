"""Traces: each run is one trace, across the API, the queue and the workers.

Off unless the standard variables ask for it (``OTEL_EXPORTER_OTLP_ENDPOINT``, or
``OTEL_TRACES_EXPORTER=otlp``; ``OTEL_SDK_DISABLED=true`` wins): then each process
exports over OTLP/HTTP through a BatchSpanProcessor, named by ``OTEL_SERVICE_NAME`` and
``OTEL_RESOURCE_ATTRIBUTES`` (``interrupt-broker-api``/``-worker`` when neither names
it). While off, every function here returns at its first line, and nothing is written
to Redis for traces.

Where the context travels (docs/design.md, "Traces and logs"):
- The ``POST /runs`` request's span (FastAPI's server span, under the caller's
  ``traceparent`` if it sent one) is the run's root; the run record keeps its
  ``traceparent`` (``trace``), written by the create run step.
- Queueing a job is a producer span, whose context rides in the arq job's kwargs
  (``trace``), so every delivery of that job, retries included, continues it. A job
  queued without one (the reconciler's, a dead worker's hand-on, the deadline pass)
  continues from the run record's.
- Each attempt is a consumer span, and each graph task a span inside it; an interrupt
  record keeps the ``traceparent`` of the attempt that raised it (``trace``).
- An answer (every channel: broker/core/channel.py) is a span under that attempt,
  linked to the span of the request that carried it (which is in the caller's trace);
  once accepted, the wait is a span from the interrupt's creation to then.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from broker.core import logs

ENABLED = False
"""Whether this process exports traces (``setup``)."""

_tracer = trace.get_tracer("interrupt-broker")
_w3c = TraceContextTextMapPropagator()
_provider: Any = None
_NULL: contextlib.nullcontext[None] = contextlib.nullcontext()
# the context a job carried, and when it started (set by ``received``)
_hop: ContextVar[tuple[otel_context.Context | None, int] | None] = ContextVar(
    "broker_hop", default=None
)


def wanted(env: Mapping[str, str] = os.environ) -> bool:
    """Whether the ``OTEL_*`` variables turn tracing on; ValueError for an exporter or
    protocol the broker does not have."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    names = {n.strip().lower() for n in env.get("OTEL_TRACES_EXPORTER", "").split(",")} - {""}
    if names - {"otlp", "none"}:
        raise ValueError(
            f"OTEL_TRACES_EXPORTER={env['OTEL_TRACES_EXPORTER']!r}: the broker exports "
            "traces with otlp (OTLP over HTTP) or none"
        )
    for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = env.get(name, "").strip()
        if protocol and protocol != "http/protobuf":
            raise ValueError(f"{name}={protocol!r}: the broker exports OTLP as http/protobuf")
    if names:
        return "otlp" in names
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def setup(component: str) -> bool:
    """Starts exporting this process's spans if ``wanted()``; once per process."""
    global ENABLED, _provider
    if ENABLED or not wanted():
        return ENABLED
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        resource = Resource.create()
        if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
            resource = resource.merge(Resource({"service.name": f"interrupt-broker-{component}"}))
        _provider = TracerProvider(resource=resource)
        _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(_provider)
    # else: a provider set up before (opentelemetry-instrument) takes the spans
    ENABLED = True
    return True


def flush() -> None:
    """Exports the spans still queued (a process about to stop)."""
    if _provider is not None:
        _provider.force_flush()


def bind(**ids: Any) -> None:
    """Adds ids (``run_id``, ``thread_id``, ``agent_id``, ``interrupt_id``, ``job_id``)
    to the log lines written from here on (broker/core/logs.py) and to the current span."""
    logs.bind(**ids)
    if ENABLED:
        trace.get_current_span().set_attributes(
            {k: str(v) for k, v in ids.items() if v is not None}
        )


def traceparent() -> str:
    """The W3C ``traceparent`` of the current span, to keep in a record ("" when off)."""
    if not ENABLED:
        return ""
    carrier: dict[str, str] = {}
    _w3c.inject(carrier)
    return carrier.get("traceparent", "")


def _parent(parent: str | None) -> otel_context.Context | None:
    return _w3c.extract({"traceparent": parent}) if parent else None


@contextlib.contextmanager
def _span(name: str, kind: SpanKind, **options: Any) -> Iterator[trace.Span]:
    span = _tracer.start_span(name, kind=kind, **options)
    with trace.use_span(span, end_on_exit=True, set_status_on_exception=False):
        try:
            yield span
        except BaseException as exc:
            code = getattr(exc, "code", None)
            if code:
                span.set_attribute("error.code", str(code))
            if getattr(exc, "status_code", 500) >= 500:
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise


def request(name: str) -> contextlib.AbstractContextManager[Any]:
    """The span of a request: FastAPI's own server span when it made one (it does
    whenever a tracer provider is set up, under the caller's ``traceparent``), else one
    made here."""
    if not ENABLED or trace.get_current_span().is_recording():
        return _NULL
    return _span(name, SpanKind.SERVER)


def _ids(h: Any) -> dict[str, str]:
    return {
        "run_id": h.run_id,
        "thread_id": h.thread_id,
        "agent_id": h.agent_id,
        "interrupt_id": h.id,
    }


def resolving(h: Any, channel: str) -> contextlib.AbstractContextManager[Any]:
    """The span of an answer to interrupt ``h``: in the run's trace, under the attempt
    that asked, linked to the current span (the request's, in the caller's trace)."""
    if not ENABLED or h is None:
        return _NULL
    here = trace.get_current_span().get_span_context()
    parent = _parent(h.trace)
    links = [trace.Link(here)] if here.is_valid and parent is not None else None
    attributes = {**_ids(h), "channel": str(channel)}
    return _span(
        "interrupt.resolve", SpanKind.SERVER, context=parent, links=links, attributes=attributes
    )


def waited(h: Any) -> None:
    """The wait of interrupt ``h``, from its creation until now, as it is answered."""
    if not ENABLED:
        return
    span = _tracer.start_span(
        "interrupt.wait",
        context=_parent(h.trace),
        start_time=h.created_ms * 1_000_000,
        attributes=_ids(h),
    )
    span.end()


def queued(function: str, job_id: str) -> dict[str, str] | None:
    """A producer span for a job being queued now, under the current span; the carrier
    of its context, for the job's kwargs. None when off, and with no span current (the
    deadline pass): its attempt then continues from the run record's context."""
    if not ENABLED or not trace.get_current_span().get_span_context().is_valid:
        return None
    attributes = {"job_id": job_id, "messaging.system": "arq", "messaging.operation": "send"}
    span = _tracer.start_span(f"queue {function}", kind=SpanKind.PRODUCER, attributes=attributes)
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    span.end()
    return carrier


def received(carrier: Mapping[str, str] | None) -> None:
    """A job starts: what it carried (``queued``) becomes the parent of its attempt."""
    if ENABLED:
        _hop.set((propagate.extract(carrier) if carrier else None, time.time_ns()))


def attempt(run: Any, job_id: str, prior: str) -> contextlib.AbstractContextManager[Any]:
    """The consumer span of one attempt at ``run``: from the job's start, under the
    context the job carried, else under the run's root span."""
    if not ENABLED:
        return _NULL
    carried, started = _hop.get() or (None, time.time_ns())
    attributes = {
        "run_id": run.id,
        "thread_id": run.thread_id,
        "agent_id": run.agent_id,
        "job_id": job_id,
        "attempt": run.attempts,
        "prior_status": str(prior),
    }
    return _span(
        "advance",
        SpanKind.CONSUMER,
        context=carried or _parent(run.trace),
        start_time=started,
        attributes=attributes,
    )


class Tasks:
    """A span per graph task, from LangGraph's ``tasks`` stream: its start event to its
    result event, under the attempt's span."""

    def __init__(self) -> None:
        self.started: dict[str, int] = {}

    def event(self, payload: Any) -> None:
        if not isinstance(payload, dict) or "id" not in payload:
            return
        task_id = str(payload["id"])
        if "triggers" in payload:  # a task starts
            self.started[task_id] = time.time_ns()
            return
        name = str(payload.get("name"))
        attributes: dict[str, Any] = {
            "langgraph.node": name,
            "langgraph.task_id": task_id,
            "langgraph.interrupted": bool(payload.get("interrupts")),
        }
        span = _tracer.start_span(
            f"node {name}", start_time=self.started.pop(task_id, None), attributes=attributes
        )
        if payload.get("error"):
            span.set_status(Status(StatusCode.ERROR, str(payload["error"])))
        span.end()
