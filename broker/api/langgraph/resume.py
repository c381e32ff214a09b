"""``command: {"resume": …}``: which pending interrupts a resume answers, and with what.

As LangGraph reads ``Command(resume=…)``: an object whose every key is an interrupt id
is a map of answers by id (LangGraph's id, or the broker's); anything else is the one
answer to the one pending interrupt. Each answer then goes through the channel contract
(``channel.answer`` / ``answer_many``, channel ``langgraph``): validated against the
interrupt's schema, audited, accepted once. Unlike the Agent Server, a resume that
names nothing pending is refused rather than run again.
"""

from __future__ import annotations

import re
from typing import Any

from arq.connections import ArqRedis

from broker.api.langgraph.errors import AmbiguousResume, NoPendingInterrupt, UnknownInterrupt
from broker.core import auth, channel
from broker.core.records import Channel, InterruptRecord, RunRecord
from broker.core.store import Store

INTERRUPT_ID = re.compile(
    r"^([0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
)
"""LangGraph's interrupt ids (xxh3-128 hex digests) and the broker's (UUIDs)."""


def _is_map(resume: Any) -> bool:
    return (
        isinstance(resume, dict)
        and bool(resume)
        and all(isinstance(k, str) and INTERRUPT_ID.match(k) for k in resume)
    )


def chosen(
    thread_id: str, pending: list[InterruptRecord], resume: Any
) -> list[tuple[InterruptRecord, Any]]:
    """The interrupts the resume answers, each with its answer."""
    if not pending:
        raise NoPendingInterrupt(
            f"thread {thread_id} has no pending interrupt (it may have been answered "
            "elsewhere); read the thread's state, or start a run with input"
        )
    if not _is_map(resume):
        if len(pending) > 1:
            raise AmbiguousResume(
                f"{len(pending)} interrupts are pending on thread {thread_id}; resume with a "
                "map of answers by interrupt id: " + ", ".join(h.lg_id for h in pending)
            )
        return [(pending[0], resume)]
    by_id = {h.id: h for h in pending} | {h.lg_id: h for h in pending}
    out: list[tuple[InterruptRecord, Any]] = []
    for iid, value in resume.items():
        if iid not in by_id:
            raise UnknownInterrupt(
                f"interrupt {iid} is not pending on thread {thread_id} (answered, closed or "
                "never raised); pending: " + ", ".join(h.lg_id for h in pending)
            )
        out.append((by_id[iid], value))
    return out


async def answer(
    store: Store,
    queue: ArqRedis,
    run: RunRecord,
    resume: Any,
    principal: auth.Principal,
) -> None:
    """Answers the run's pending interrupts the resume names; the first valid answer to
    each wins, and a refused one changes nothing."""
    pending = await store.pending_interrupts(run.id)
    answers = chosen(run.thread_id, pending, resume)
    who = principal.key_id or "langgraph"
    if len(answers) == 1:
        h, value = answers[0]
        await channel.answer(
            store,
            queue,
            h.id,
            value,
            channel=Channel.LANGGRAPH,
            principal=principal,
            resolved_by=who,
        )
        return
    await channel.answer_many(
        store, queue, answers, channel=Channel.LANGGRAPH, principal=principal, resolved_by=who
    )
