"""Reading runs, interrupts and events: single records, and pages of the indexes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NoReturn

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from broker.core import errors, runlog
from broker.core.codec import dumps
from broker.core.ids import is_id
from broker.core.keys import Keys
from broker.core.records import InterruptRecord, InterruptStatus, RunRecord
from broker.core.store.read_scripts import READS
from broker.core.store.views import interrupt_view


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None
    version: str | None = None
    """The interrupts' version as the page was read (``list_interrupts(version=True)``)."""


CURSOR_PATTERN = r"^[0-9]{0,15}$"
"""A page cursor: the index position (a sequence number) the previous page ended at; the
API documents this pattern and accepts every string that matches it."""


def encode_cursor(score: float | str) -> str:
    return str(int(float(score)))


def decode_cursor(cursor: str | None) -> int | None:
    """The position a cursor names; None (the first page) for none or an empty one."""
    if cursor is None:
        return None
    if not re.fullmatch(CURSOR_PATTERN.strip("^$"), cursor):
        raise errors.InvalidCursor(
            "cursor is not one this server issued; pass next_cursor from a previous page"
        )
    return int(cursor) if cursor else None


def _narrow(agent_id: str | None, visible: frozenset[str] | None) -> tuple[bool, str | None]:
    """(whether anything can match, the agent filter) for a key limited to ``visible``."""
    if visible is None:
        return True, agent_id
    if agent_id is not None:
        return agent_id in visible, agent_id
    return True, next(iter(visible)) if len(visible) == 1 else None


def _wanted(visible: frozenset[str] | None, **wanted: str | None) -> list[str | int]:
    """The page script's filter arguments: the (field, value) pairs a record must have
    (None: any value), and the agents it may belong to (None: any). An index covers at
    most one filter, so the page checks the rest."""
    fields = [x for name, value in wanted.items() if value for x in (name, value)]
    agents = [] if visible is None else sorted(visible)
    return [len(fields) // 2, *fields, -1 if visible is None else len(agents), *agents]


def _pairs(flat: list[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _missing_run(run_id: str, tombstone: str | None) -> NoReturn:
    """410 for a run whose records expired (its tombstone names its agent), else 404."""
    if tombstone is not None:
        raise errors.RunRecordExpired(
            f"run {run_id!r} ended and its record expired after the retention "
            "period (BROKER_RETENTION_S)",
            agent_id=tombstone,
        )
    raise errors.RunNotFound(f"no run with id {run_id!r}")


class Reads:
    r: aioredis.Redis
    keys: Keys
    _reads: dict[str, AsyncScript] | None = None

    def _read(self, name: str) -> AsyncScript:
        """A read script (broker/core/store/read_scripts.py), registered on first use."""
        if self._reads is None:
            defs = self.keys.lua()
            self._reads = {n: self.r.register_script(f"{defs}\n{b}") for n, b in READS.items()}
        return self._reads[name]

    async def run(self, run_id: str) -> RunRecord:
        # an id of another shape names no run, and could name another key
        h: dict[str, str] = await self.r.hgetall(self.keys.run(run_id)) if is_id(run_id) else {}
        if not h:
            # only a miss pays for the tombstone read
            _missing_run(run_id, await self.r.get(self.keys.run_tombstone(run_id)))
        return RunRecord.from_hash(h)

    async def run_and_pending(self, run_id: str) -> tuple[RunRecord, list[str]]:
        """The run and the ids of its pending interrupts, in one round trip; its past
        interrupts are never read."""
        if not is_id(run_id):
            return await self.run(run_id), []
        h, extra = await self._read("run")(keys=[], args=[run_id])
        if not h:
            _missing_run(run_id, extra or None)
        return RunRecord.from_hash(_pairs(h)), list(extra)

    async def interrupt(self, interrupt_id: str) -> InterruptRecord:
        h: dict[str, str] = (
            await self.r.hgetall(self.keys.interrupt(interrupt_id)) if is_id(interrupt_id) else {}
        )
        if not h:
            agent = await self.r.get(self.keys.interrupt_tombstone(interrupt_id))
            if agent is not None:
                raise errors.InterruptRecordExpired(
                    f"interrupt {interrupt_id!r} belonged to a run that ended, and its "
                    "record expired after the retention period (BROKER_RETENTION_S)",
                    agent_id=agent,
                )
            raise errors.InterruptNotFound(f"no interrupt with id {interrupt_id!r}")
        return InterruptRecord.from_hash(h)

    async def active_run(self, thread_id: str) -> RunRecord | None:
        """The thread's queued, running or interrupted run, if it has one."""
        run_id = await self.r.get(self.keys.thread_active_run(thread_id))
        if not run_id:
            return None
        h: dict[str, str] = await self.r.hgetall(self.keys.run(run_id))
        return RunRecord.from_hash(h) if h else None

    async def thread_agents(self, thread_id: str) -> set[str]:
        """The agents of every run on the thread."""
        run_ids = await self.r.zrange(self.keys.runs_by_thread(thread_id), 0, -1)
        async with self.r.pipeline(transaction=False) as pipe:
            for rid in run_ids:
                pipe.hget(self.keys.run(rid), "agent_id")
            return {a for a in await pipe.execute() if a}

    async def open_interrupts(self, run_id: str) -> list[InterruptRecord]:
        """The run's open interrupts (pending, or answered and not yet applied), oldest
        first. Its past ones are never read."""
        ids = await self.r.zrange(self.keys.run_open(run_id), 0, -1)
        return await self._interrupts(ids)

    async def pending_interrupts(self, run_id: str) -> list[InterruptRecord]:
        return [
            h for h in await self.open_interrupts(run_id) if h.status == InterruptStatus.PENDING
        ]

    async def _interrupts(self, ids: list[str]) -> list[InterruptRecord]:
        if not ids:
            return []
        async with self.r.pipeline(transaction=False) as pipe:
            for iid in ids:
                pipe.hgetall(self.keys.interrupt(iid))
            return [InterruptRecord.from_hash(h) for h in await pipe.execute() if h]

    async def get_run(self, run_id: str) -> dict[str, Any]:
        """The public JSON of one run."""
        run, pending = await self.run_and_pending(run_id)
        return run.view(pending)

    async def run_events(self, run_id: str, after: str = "0") -> list[tuple[str, dict[str, Any]]]:
        """The run's events after an event id, oldest first (none for an unknown run)."""
        thread_id, agent_id = await self.r.hmget(self.keys.run(run_id), "thread_id", "agent_id")
        if thread_id is None:
            return []
        owner = runlog.Owner(run_id, thread_id, agent_id)
        log = self.keys.run_events(run_id)
        return [e async for e in runlog.entries(self.r, log, owner, after)]

    async def interrupts_version(self) -> str:
        return str(await self.r.get(self.keys.interrupts_version) or "0")

    async def list_runs(
        self,
        *,
        status: str | None,
        agent_id: str | None,
        thread_id: str | None,
        limit: int,
        cursor: str | None,
        order: str = "desc",
        visible: frozenset[str] | None = None,
    ) -> Page:
        """A page of runs; ``visible`` limits it to those agents (None: every agent)."""
        k = self.keys
        possible, agent_id = _narrow(agent_id, visible)
        if not possible:
            return Page([], None)
        if thread_id:
            index = k.runs_by_thread(thread_id)
        elif agent_id:
            index = k.runs_by_agent(agent_id)
        elif status:
            index = k.runs_by_status(status)
        else:
            index = k.runs

        wanted = _wanted(visible, status=status, agent_id=agent_id, thread_id=thread_id)
        _, next_cursor, rows = await self._page("run", index, wanted, limit, cursor, order)
        items = [RunRecord.from_hash(_pairs(h)).view(list(pending)) for h, pending in rows]
        return Page(items, next_cursor)

    async def list_interrupts(
        self,
        *,
        status: str,
        agent_id: str | None,
        itype: str | None,
        thread_id: str | None,
        run_id: str | None,
        limit: int,
        cursor: str | None,
        order: str = "asc",
        visible: frozenset[str] | None = None,
        version: bool = False,
        assigned_to: frozenset[str] | None = None,
    ) -> Page:
        """A page of interrupts; ``visible`` limits it to those agents (None: every agent).
        With ``version``, the page carries the interrupts' version read with it.
        ``assigned_to``: only pending ones with one of these names among their assignees
        (the union of their assignee indexes; the other filters still apply)."""
        k = self.keys
        possible, agent_id = _narrow(agent_id, visible)
        if assigned_to is not None and (status != "pending" or not assigned_to):
            possible = False  # only pending interrupts are indexed by assignee
        if not possible:
            return Page([], None, await self.interrupts_version() if version else None)
        index: str | list[str]
        if assigned_to is not None:
            index = [k.interrupts_by_assignee(status, name) for name in sorted(assigned_to)]
        elif run_id:
            index = k.run_interrupts(run_id)
        elif thread_id:
            index = k.interrupts_by_thread(status, thread_id)
        elif agent_id:
            index = k.interrupts_by_agent(status, agent_id)
        elif itype:
            index = k.interrupts_by_type(status, itype)
        else:
            index = k.interrupts_by_status(status)

        wanted = _wanted(
            visible,
            status=status,
            agent_id=agent_id,
            type=itype,
            thread_id=thread_id,
            run_id=run_id,
        )
        got, next_cursor, rows = await self._page(
            "interrupt", index, wanted, limit, cursor, order, version=version
        )
        items = [interrupt_view(_pairs(h)) for h in rows]
        return Page(items, next_cursor, got if version else None)

    async def _page(
        self,
        kind: str,
        index: str | list[str],
        wanted: list[str | int],
        limit: int,
        cursor: str | None,
        order: str,
        *,
        version: bool = False,
    ) -> tuple[str, str | None, list[Any]]:
        """One page of an index, in one script call: (the interrupts' version when asked
        for, the next cursor, the records).

        O(page) reads, filtered, continuing from a cursor: a filter the index does not
        cover may leave a page short; scanning stops after a bounded number of records
        so a page never costs more than that. A record that has gone meanwhile is left
        out.
        """
        bound = decode_cursor(cursor)
        max_scan = max(limit * 20, 200)
        got, next_cursor, *rows = await self._read("page")(
            keys=[],
            args=[
                kind,
                dumps([index] if isinstance(index, str) else index),
                "desc" if order == "desc" else "asc",
                "" if bound is None else bound,
                limit,
                max_scan,
                "1" if version else "",
                *wanted,
            ],
        )
        return got, encode_cursor(next_cursor) if next_cursor else None, rows
