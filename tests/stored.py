"""Store-level helpers: a run stopped on interrupts, made through the store's own
transitions (begin attempt, record interrupts), as a worker would."""

from __future__ import annotations

import uuid
from typing import Any

from broker.core import fingerprint
from broker.core.codec import now_ms
from broker.core.records import InterruptRecord, RunRecord
from broker.core.store import Attempt, Store


def raised(
    run: RunRecord, value: Any, *, lg_id: str | None = None, **extra: Any
) -> InterruptRecord:
    """An interrupt the graph raised on ``run``, with its fingerprint as the worker
    computes it."""
    ts = now_ms()
    lg_id = lg_id or uuid.uuid4().hex
    extra.setdefault("fingerprint", fingerprint.of(run.id, lg_id, value))
    return InterruptRecord.new(
        id=str(uuid.uuid4()),
        lg_id=lg_id,
        run_id=run.id,
        thread_id=run.thread_id,
        agent_id=run.agent_id,
        value=value,
        created_ms=ts,
        updated_ms=ts,
        **extra,
    )


async def waiting(
    store: Store, agent_id: str, *values: Any, **extra: Any
) -> tuple[RunRecord, list[str]]:
    """A new run of ``agent_id`` stopped on one interrupt per value; their ids."""
    run = await store.create_run(agent_id, None, {}, {})
    begun = await store.begin_attempt(run.id, "", "job-1")
    assert isinstance(begun, Attempt), begun
    ids = await store.record_interrupts(
        begun.run, [raised(begun.run, v, **extra) for v in values], [], job_id="job-1"
    )
    return await store.run(run.id), ids
