"""Reading runs, interrupts and events: single records, and pages of the indexes."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from broker.core import errors, runlog
from broker.core.ids import is_id
from broker.core.keys import Keys
from broker.core.records import InterruptRecord, InterruptStatus, RunRecord


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


CURSOR_PATTERN = r"^[0-9]{0,15}$"
"""A page cursor: the index position (a sequence number) the previous page ended at; the
API documents this pattern and accepts every string that matches it."""


def encode_cursor(score: float) -> str:
    return str(int(score))


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


def _matcher(
    visible: frozenset[str] | None, **wanted: str | None
) -> Callable[[dict[str, str]], bool]:
    """Whether a record hash has every wanted field value (None: any) and a visible agent;
    an index covers at most one filter, so the page checks the rest."""
    fields = {name: value for name, value in wanted.items() if value}

    def keep(h: dict[str, str]) -> bool:
        return all(h.get(name) == value for name, value in fields.items()) and (
            visible is None or h["agent_id"] in visible
        )

    return keep


class Reads:
    r: aioredis.Redis
    keys: Keys

    async def run(self, run_id: str) -> RunRecord:
        # an id of another shape names no run, and could name another key
        h: dict[str, str] = await self.r.hgetall(self.keys.run(run_id)) if is_id(run_id) else {}
        if not h:
            # only a miss pays for the tombstone read
            agent = await self.r.get(self.keys.run_tombstone(run_id))
            if agent is not None:
                raise errors.RunRecordExpired(
                    f"run {run_id!r} ended and its record expired after the retention "
                    "period (BROKER_RETENTION_S)",
                    agent_id=agent,
                )
            raise errors.RunNotFound(f"no run with id {run_id!r}")
        return RunRecord.from_hash(h)

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
        run = await self.run(run_id)
        return run.view([h.id for h in await self.pending_interrupts(run_id)])

    async def _pending_ids(self, run_ids: list[str]) -> dict[str, list[str]]:
        """The pending interrupt ids of each run: two round trips for a whole page."""
        async with self.r.pipeline(transaction=False) as pipe:
            for rid in run_ids:
                pipe.zrange(self.keys.run_open(rid), 0, -1)
            open_ids: list[list[str]] = await pipe.execute()
        async with self.r.pipeline(transaction=False) as pipe:
            for ids in open_ids:
                for iid in ids:
                    pipe.hget(self.keys.interrupt(iid), "status")
            statuses = iter(await pipe.execute())
        return {
            rid: [iid for iid in ids if next(statuses) == InterruptStatus.PENDING]
            for rid, ids in zip(run_ids, open_ids, strict=True)
        }

    async def run_events(self, run_id: str, after: str = "0") -> list[tuple[str, dict[str, Any]]]:
        """The run's events after an event id, oldest first."""
        return [e async for e in runlog.entries(self.r, self.keys.run_events(run_id), after)]

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

        keep = _matcher(visible, status=status, agent_id=agent_id, thread_id=thread_id)
        hashes, next_cursor = await self._page(index, k.run, keep, limit, cursor, order)
        runs = [RunRecord.from_hash(h) for h in hashes]
        pending = await self._pending_ids([run.id for run in runs]) if runs else {}
        return Page([run.view(pending[run.id]) for run in runs], next_cursor)

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
    ) -> Page:
        """A page of interrupts; ``visible`` limits it to those agents (None: every agent)."""
        k = self.keys
        possible, agent_id = _narrow(agent_id, visible)
        if not possible:
            return Page([], None)
        if run_id:
            index = k.run_interrupts(run_id)
        elif thread_id:
            index = k.interrupts_by_thread(status, thread_id)
        elif agent_id:
            index = k.interrupts_by_agent(status, agent_id)
        elif itype:
            index = k.interrupts_by_type(status, itype)
        else:
            index = k.interrupts_by_status(status)

        keep = _matcher(
            visible,
            status=status,
            agent_id=agent_id,
            type=itype,
            thread_id=thread_id,
            run_id=run_id,
        )
        hashes, next_cursor = await self._page(index, k.interrupt, keep, limit, cursor, order)
        return Page([InterruptRecord.from_hash(h).view() for h in hashes], next_cursor)

    async def _page(
        self,
        index: str,
        record_key: Callable[[str], str],
        keep: Callable[[dict[str, str]], bool],
        limit: int,
        cursor: str | None,
        order: str,
    ) -> tuple[list[dict[str, str]], str | None]:
        """One page of an index: O(page) reads, filtered, continuing from a cursor.

        A filter the index does not cover may leave a page short; scanning stops after
        a bounded number of records so a page never costs more than that.
        """
        desc = order == "desc"
        bound: float | None = decode_cursor(cursor)
        out: list[dict[str, str]] = []
        scanned = 0
        max_scan = max(limit * 20, 200)
        last_score: float | None = None
        while len(out) <= limit and scanned < max_scan:
            batch = limit + 1 - len(out)
            if desc:
                hi = f"({bound}" if bound is not None else "+inf"
                rows = await self.r.zrevrangebyscore(index, hi, "-inf", 0, batch, withscores=True)
            else:
                lo = f"({bound}" if bound is not None else "-inf"
                rows = await self.r.zrangebyscore(index, lo, "+inf", 0, batch, withscores=True)
            if not rows:
                return out[:limit], None
            async with self.r.pipeline(transaction=False) as pipe:
                for member, _ in rows:
                    pipe.hgetall(record_key(member))
                hashes = await pipe.execute()
            for (_, score), h in zip(rows, hashes, strict=True):
                scanned += 1
                bound = score
                if h and keep(h):
                    if len(out) == limit:
                        # one more exists past this page
                        return out, encode_cursor(last_score) if last_score is not None else None
                    out.append(h)
                    last_score = score
            if len(rows) < batch:
                return out, None
        return out[:limit], encode_cursor(bound) if bound is not None else None
