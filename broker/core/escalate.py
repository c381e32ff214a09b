"""The deadline pass's work on one due interrupt: the next step of its escalation ladder
(broker/core/escalation.py), or its expiry.

An intermediate step (a reminder, or a reassignment) is one escalate transition, which
also moves the interrupt's place in the deadlines set to the step after; the last step,
when it ends the wait, is the interrupt's expiry and goes through the channel
contract's ``expire``. Each is audited with actor ``escalation`` (the expiry with
``expiry``, as any deadline).
"""

from __future__ import annotations

import logging
from typing import Any

from arq.connections import ArqRedis

from broker.core import audit, channel, errors
from broker.core.records import Channel, InterruptRecord
from broker.core.store import Store

log = logging.getLogger("broker.escalate")

ACTOR = "escalation"


async def run_due(store: Store, queue: ArqRedis, interrupt_id: str, now: int) -> bool:
    """Runs what is due on ``interrupt_id`` at ``now``; True when this call changed it."""
    try:
        h = await store.interrupt(interrupt_id)
    except errors.InterruptNotFound:
        await store.drop_deadline(interrupt_id)
        return False
    step = h.next_step
    if step is None or int(step["at_ms"]) > now:
        return await channel.expire(store, queue, interrupt_id, now, h)
    outcome = await step_once(store, h, now)
    if outcome == "expired":
        # the pass came after the expiry too: the wait ends, the steps left are moot
        return await channel.expire(store, queue, interrupt_id, now)
    return outcome == "ok"


async def step_once(store: Store, h: InterruptRecord, now: int) -> str:
    """Runs the interrupt's next ladder step (as ``h`` was read) at ``now``, in one
    transition; its outcome ('ok', or why not: 'closed' when it no longer waits,
    'stale' when that step has run, 'not_due', 'expired', 'gone')."""
    n = h.escalation_next
    step = h.escalation[n]
    event: dict[str, Any] = {"interrupt_id": h.id, "type": h.type, "step": n}
    entry = audit.entry(
        actor=ACTOR,
        key_id=None,
        channel=Channel.EXPIRY,
        outcome="assigned" if "assign" in step else "reminded",
        payload_digest=None,
        at_ms=now,
    ) | {"step": n}
    if "assign" in step:
        by = {"actor": ACTOR, "key_id": None, "person": None}
        event |= {"assignees": step["assign"], "by": by}
        entry |= {"assignees": step["assign"], "comment": None}
    else:
        event["after_s"] = step["after_s"]
    outcome = await store.escalate_script(h.id, n, event=event, audit_entry=entry, now=now)
    if outcome == "ok":
        log.info("interrupt %s: escalation step %d (%s)", h.id, n, entry["outcome"])
    return outcome
