"""What an API key may see: a key limited to some agents finds nothing of the others.

Their runs, interrupts and threads answer 404, exactly as ids that do not exist, so a
limited key learns nothing about them; that holds for expired ones too (410 only to a
key that could have seen the record). Every route that takes a run id, an interrupt id
or a thread id checks it here before it reads or writes anything else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from broker.core import admission, auth, errors, ids
from broker.core.records import InterruptRecord, RunRecord
from broker.core.store import Store


@contextlib.contextmanager
def _run_read(principal: auth.Principal, run_id: str) -> Iterator[None]:
    """An expired run of an agent the key may not see is RunNotFound, not 410."""
    try:
        yield
    except errors.RunRecordExpired as exc:
        if not principal.sees(exc.agent_id):
            raise errors.RunNotFound(f"no run with id {run_id!r}") from None
        raise


def _seen_run(principal: auth.Principal, run_id: str, h: RunRecord) -> RunRecord:
    if not principal.sees(h.agent_id):
        raise errors.RunNotFound(f"no run with id {run_id!r}")
    return h


async def run(store: Store, principal: auth.Principal, run_id: str) -> RunRecord:
    """The run, or RunNotFound for a run of an agent the key may not see."""
    with _run_read(principal, run_id):
        h = await store.run(run_id)
    return _seen_run(principal, run_id, h)


async def run_view(store: Store, principal: auth.Principal, run_id: str) -> dict[str, Any]:
    """The run's public JSON, read in one round trip; the same refusals as ``run``."""
    with _run_read(principal, run_id):
        h, pending = await store.run_and_pending(run_id)
    return _seen_run(principal, run_id, h).view(pending)


async def interrupt(store: Store, principal: auth.Principal, interrupt_id: str) -> InterruptRecord:
    """The interrupt, or InterruptNotFound for one the key may not see."""
    return await admission.visible(store, principal, interrupt_id)


async def thread(store: Store, principal: auth.Principal, thread_id: str, agent_id: str) -> None:
    """Refuses a thread ``agent_id`` may not run on for this key (POST /runs, AG-UI).

    A thread's checkpoints hold its conversation, so a thread with runs of an agent the
    key may not see is ThreadNotFound (as a thread that does not exist), and one that
    belongs to another agent is ThreadAgentMismatch: a thread stays with the agent that
    started it. A thread without runs is new, and anyone may start it.
    """
    if not ids.is_id(thread_id):
        raise errors.InvalidRequest(f"thread id: use {ids.ID_RULE}", field="threadId")
    owners = await store.thread_agents(thread_id)
    if not all(principal.sees(a) for a in owners):
        raise errors.ThreadNotFound(f"no thread {thread_id!r} for this API key")
    others = sorted(owners - {agent_id})
    if others:
        raise errors.ThreadAgentMismatch(
            f"thread {thread_id!r} belongs to agent {others[0]!r}; run {agent_id!r} on a "
            "new thread, or run that agent on this one",
            thread_agent_id=others[0],
        )
