"""What an API key may see: a key limited to some agents finds nothing of the others.

Their runs and interrupts answer 404, exactly as ids that do not exist, so a limited
key learns nothing about them; that holds for expired ones too (410 only to a key that
could have seen the record).
"""

from __future__ import annotations

from broker.core import auth, errors
from broker.core.records import InterruptRecord, RunRecord
from broker.core.store import Store


async def run(store: Store, principal: auth.Principal, run_id: str) -> RunRecord:
    """The run, or RunNotFound for a run of an agent the key may not see."""
    try:
        h = await store.run(run_id)
    except errors.RunRecordExpired as exc:
        if not principal.sees(exc.agent_id):
            raise errors.RunNotFound(f"no run with id {run_id!r}") from None
        raise
    if not principal.sees(h.agent_id):
        raise errors.RunNotFound(f"no run with id {run_id!r}")
    return h


async def interrupt(store: Store, principal: auth.Principal, interrupt_id: str) -> InterruptRecord:
    """The interrupt, or InterruptNotFound for one the key may not see."""
    try:
        h = await store.interrupt(interrupt_id)
    except errors.InterruptRecordExpired as exc:
        if not principal.sees(exc.agent_id):
            raise errors.InterruptNotFound(f"no interrupt with id {interrupt_id!r}") from None
        raise
    if not principal.sees(h.agent_id):
        raise errors.InterruptNotFound(f"no interrupt with id {interrupt_id!r}")
    return h
