"""The store: the one state machine of runs and interrupts, on Redis.

Every transition is one Lua script (broker/core/store/_lua.py), so a record, its indexes
and its events always change in one atomic step; nothing outside this package writes
run or interrupt state. A run keeps the set of its open interrupts (pending, or
answered and not yet applied), so no hot path reads a run's past ones.

Runs::

    status       transition         -> status       emits
    (none)       create run         -> queued       run.queued
    queued       begin attempt      -> running      run.started
    interrupted  begin attempt      -> running      run.resumed (needs unapplied answers)
    running      begin attempt      -> running      (recovery of a dead attempt)
    running      record interrupts  -> interrupted  interrupt.created, interrupt.cancelled,
                                                    run.interrupted
    running      record finish      -> succeeded    interrupt.cancelled, run.succeeded
    running      record finish      -> failed       interrupt.cancelled, run.failed
    unfinished   cancel             -> cancelled    interrupt.cancelled, run.cancelled
    unfinished   cancel (as failed) -> failed       interrupt.cancelled, run.failed
    interrupted  expire (fail)      -> failed       interrupt.expired, run.failed
    interrupted  expire (cancel)    -> cancelled    interrupt.expired, run.cancelled

Interrupts::

    status       transition         -> status       emits
    (none)       record interrupts  -> pending      interrupt.created
    pending      resolve            -> resolved     interrupt.resolved
    pending      resolve (undo)     -> accepted     interrupt.accepted (held in its undo
                                                    window; broker/core/undo.py)
    accepted     withdraw           -> pending      interrupt.withdrawn (window open)
    accepted     begin attempt      -> resolved     interrupt.resolved (window closed)
    pending      expire             -> expired      interrupt.expired (with the default
                                                    as its resolution, or none)
    pending      assign             -> pending      interrupt.assigned (who may answer)
    pending      vote               -> pending      interrupt.voted (a rule not yet met)
    pending      vote               -> resolved     interrupt.voted, interrupt.resolved
                                                    (the vote that meets the rule)
    pending      escalate           -> pending      interrupt.reminded or interrupt.assigned
                                                    (a ladder's step; broker/core/escalate.py)
    open         close              -> cancelled    interrupt.cancelled (its run ended, or
                                                    the graph moved past it)
    answered     mark applied       -> (same)       (leaves the run's open set)

Resolve, vote and expire accept only a pending interrupt of an unfinished run, before its
deadline (resolve) or after it (expire): of racing answers and the deadline, one wins.
Close and mark applied are steps of record interrupts, record finish, cancel and
expire, never calls of their own. An unfinished run is queued, running or interrupted.
Begin attempt, record interrupts and record finish take the attempt's job id and its
lease fence (broker/core/fence.py): an attempt that a later one, or another lease
holder, has taken over writes nothing.

Retention: the step that ends a run (record finish, cancel, expire) also gives the run,
its interrupts, their audit logs and its event stream a TTL (``BROKER_RETENTION_S``) and
leaves tombstones that outlive them; unfinished runs and their interrupts never get one.
A sweep drops the index entries of expired runs (broker/core/store/retention.py).
"""

from __future__ import annotations

import redis.asyncio as aioredis

from broker.core import receipts
from broker.core.keys import Keys
from broker.core.settings import Settings
from broker.core.store.due import Due
from broker.core.store.reads import CURSOR_PATTERN, Page, Reads, decode_cursor, encode_cursor
from broker.core.store.retention import Retention
from broker.core.store.threads import Threads
from broker.core.store.transitions import Attempt, Transitions
from broker.core.store.undo import Undo
from broker.core.store.votes import Votes

__all__ = ["CURSOR_PATTERN", "Attempt", "Page", "Store", "decode_cursor", "encode_cursor"]


class Store(Reads, Transitions, Votes, Undo, Retention, Due, Threads):
    """Runs, interrupts and their events, on Redis."""

    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self.r = redis
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.receipts = receipts.load(settings)
        """Signs each accepted resolution's receipt (broker/core/receipts.py)."""
        self._compile()
