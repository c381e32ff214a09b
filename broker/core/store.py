"""The Redis store: the one source of truth for runs and interrupts.

Every state change is one Lua script or one MULTI/EXEC transaction, and moves the
indexes in the same step as the record they point to. The API and the worker share it.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from broker.core import answers, auth, errors
from broker.core.codec import dumps, loads, now_ms
from broker.core.keys import Keys
from broker.core.records import (
    TERMINAL_RUN_STATUSES,
    interrupt_view,
    run_view,
)
from broker.core.scripts import CREATE_RUN, EMIT, EXPIRE, RESOLVE
from broker.core.settings import Settings


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


@dataclass(frozen=True)
class PendingInterrupt:
    """One interrupt as the graph reports it after a step."""

    lg_id: str
    value: Any
    response_schema: Any = None


def encode_cursor(score: float) -> str:
    return base64.urlsafe_b64encode(repr(score).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> float:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return float(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.InvalidCursor(
            "cursor is not one this server issued; pass next_cursor from a previous page"
        ) from exc


class Store:
    """Runs, interrupts and their events, on Redis."""

    def __init__(self, redis: aioredis.Redis, settings: Settings) -> None:
        self.r = redis
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self._create_run = redis.register_script(CREATE_RUN)
        self._resolve = redis.register_script(RESOLVE)
        self._emit = redis.register_script(EMIT)
        self._expire = redis.register_script(EXPIRE)

    # -- events ---------------------------------------------------------------------
    def event(self, etype: str, run: dict[str, str], **data: Any) -> str:
        return dumps(
            {
                "type": etype,
                "ts": now_ms(),
                "run_id": run["id"],
                "thread_id": run["thread_id"],
                "agent_id": run["agent_id"],
                "data": data,
            }
        )

    async def emit(self, pipe: Any, run_id: str, event: str) -> None:
        """Queues one event on ``pipe`` (a pipeline or the client itself)."""
        s = self.settings
        await self._emit(
            keys=[self.keys.events, self.keys.run_events(run_id)],
            args=[event, s.events_maxlen_global, s.events_maxlen_run],
            client=pipe,
        )

    async def run_events(self, run_id: str, after: str = "0") -> list[tuple[str, dict[str, Any]]]:
        """The run's events after a stream id, oldest first."""
        entries = await self.r.xrange(
            self.keys.run_events(run_id), min=f"({after}" if after != "0" else "-"
        )
        return [(eid, loads(fields["event"])) for eid, fields in entries]

    # -- runs -----------------------------------------------------------------------
    async def create_run(
        self, agent_id: str, thread_id: str | None, input: Any, metadata: dict[str, Any]
    ) -> dict[str, Any]:
        run_id = str(uuid.uuid4())
        thread_id = thread_id or str(uuid.uuid4())
        ts = now_ms()
        run = {
            "id": run_id,
            "thread_id": thread_id,
            "agent_id": agent_id,
            "status": "queued",
            "input": dumps(input),
            "metadata": dumps(metadata),
            "attempts": "0",
            "answers": "0",
            "created_ms": str(ts),
            "updated_ms": str(ts),
        }
        flat = [x for kv in run.items() for x in kv]
        k = self.keys
        res = await self._create_run(
            keys=[
                k.run(run_id),
                k.thread_active_run(thread_id),
                k.runs,
                k.runs_by_status("queued"),
                k.runs_by_agent(agent_id),
                k.runs_by_thread(thread_id),
                k.seq,
                k.runs_due,
                k.events,
                k.run_events(run_id),
            ],
            args=[
                run_id,
                thread_id,
                dumps(flat),
                ts,
                self.event("run.queued", run, input=input),
                self.settings.events_maxlen_global,
                self.settings.events_maxlen_run,
            ],
        )
        if res[0] == "busy":
            raise errors.ThreadBusy(
                f"thread {thread_id} already has an active run {res[1]}; answer or cancel it "
                "first, or start the run on another thread",
                active_run_id=res[1],
            )
        return run_view(run, [])

    async def run_hash(self, run_id: str) -> dict[str, str]:
        h: dict[str, str] = await self.r.hgetall(self.keys.run(run_id))
        if not h:
            raise errors.RunNotFound(f"no run with id {run_id!r}")
        return h

    async def active_run(self, thread_id: str) -> dict[str, str] | None:
        """The thread's queued, running or interrupted run, if it has one."""
        run_id = await self.r.get(self.keys.thread_active_run(thread_id))
        if not run_id:
            return None
        h: dict[str, str] = await self.r.hgetall(self.keys.run(run_id))
        return h or None

    async def thread_agents(self, thread_id: str) -> set[str]:
        """The agents of every run on the thread."""
        run_ids = await self.r.zrange(self.keys.runs_by_thread(thread_id), 0, -1)
        async with self.r.pipeline(transaction=False) as pipe:
            for rid in run_ids:
                pipe.hget(self.keys.run(rid), "agent_id")
            return {a for a in await pipe.execute() if a}

    async def interrupt_hashes(self, run_id: str) -> list[dict[str, str]]:
        """Every interrupt of a run, oldest first."""
        ids = await self.r.zrange(self.keys.run_interrupts(run_id), 0, -1)
        if not ids:
            return []
        async with self.r.pipeline(transaction=False) as pipe:
            for iid in ids:
                pipe.hgetall(self.keys.interrupt(iid))
            return [h for h in await pipe.execute() if h]

    async def get_run(self, run_id: str) -> dict[str, Any]:
        h = await self.run_hash(run_id)
        pending = [i["id"] for i in await self.interrupt_hashes(run_id) if i["status"] == "pending"]
        return run_view(h, pending)

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
        if visible is not None:
            if agent_id is not None and agent_id not in visible:
                return Page([], None)
            if agent_id is None and len(visible) == 1:
                agent_id = next(iter(visible))
        if thread_id:
            index = k.runs_by_thread(thread_id)
        elif agent_id:
            index = k.runs_by_agent(agent_id)
        elif status:
            index = k.runs_by_status(status)
        else:
            index = k.runs

        def keep(h: dict[str, str]) -> bool:
            return (
                (not status or h["status"] == status)
                and (not agent_id or h["agent_id"] == agent_id)
                and (not thread_id or h["thread_id"] == thread_id)
                and (visible is None or h["agent_id"] in visible)
            )

        hashes, next_cursor = await self._page(index, k.run, keep, limit, cursor, order)
        items = [run_view(h, []) for h in hashes]
        if items:
            pend = await self._pending_ids([h["id"] for h in hashes])
            for item in items:
                item["pending_interrupts"] = pend[item["run_id"]]
        return Page(items, next_cursor)

    async def _pending_ids(self, run_ids: list[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for rid in run_ids:
            out[rid] = [
                i["id"] for i in await self.interrupt_hashes(rid) if i["status"] == "pending"
            ]
        return out

    async def cancel_run(self, run_id: str) -> dict[str, Any]:
        """Cancels a queued, running or interrupted run and closes its pending interrupts."""
        return await self.stop_run(run_id, "cancelled")

    async def stop_run(self, run_id: str, status: str, error: Any = None) -> dict[str, Any]:
        """Ends an unfinished run as ``cancelled`` or ``failed``; its pending interrupts close.

        One transaction: no answer can be accepted for the run once it has ended.
        """
        k = self.keys
        while True:
            async with self.r.pipeline(transaction=True) as pipe:
                await pipe.watch(k.run(run_id))
                run = await pipe.hgetall(k.run(run_id))
                if not run:
                    raise errors.RunNotFound(f"no run with id {run_id!r}")
                if run["status"] in TERMINAL_RUN_STATUSES:
                    raise errors.RunFinished(
                        f"run {run_id} already finished with status {run['status']}",
                        status=run["status"],
                    )
                pending = await self.watch_pending(pipe, run_id)
                pipe.multi()
                await self.close_pending(pipe, run, pending)
                extra = {"error": dumps(error)} if error is not None else {}
                self.set_run_status(pipe, run, status, **extra)
                pipe.hset(k.run(run_id), "cancel_requested", "1")
                data = {"error": error} if error is not None else {}
                await self.emit(pipe, run_id, self.event(f"run.{status}", run, **data))
                try:
                    await pipe.execute()
                except WatchError:
                    continue
                break
        return await self.get_run(run_id)

    async def watch_pending(self, pipe: Any, run_id: str) -> list[dict[str, str]]:
        """WATCHes every interrupt of the run on ``pipe``; returns the pending ones."""
        ids = await pipe.zrange(self.keys.run_interrupts(run_id), 0, -1)
        if not ids:
            return []
        await pipe.watch(*(self.keys.interrupt(i) for i in ids))
        hashes = [await pipe.hgetall(self.keys.interrupt(i)) for i in ids]
        return [h for h in hashes if h and h["status"] == "pending"]

    async def close_pending(
        self, pipe: Any, run: dict[str, str], pending: list[dict[str, str]]
    ) -> None:
        """Queues on a MULTI ``pipe``: the run's pending interrupts become cancelled.

        The caller ends the run in the same transaction, after these events, so a
        client reading the run's stream sees the interrupts close before the run ends.
        """
        k = self.keys
        ts = str(now_ms())
        for h in pending:
            pipe.hset(k.interrupt(h["id"]), mapping={"status": "cancelled", "updated_ms": ts})
            for index in self.interrupt_indexes("pending", h):
                pipe.zrem(index, h["id"])
            for index in self.interrupt_indexes("cancelled", h):
                pipe.zadd(index, {h["id"]: float(h.get("seq") or 0)})
            pipe.zrem(k.deadlines, h["id"])
            ev = self.event(
                "interrupt.cancelled", run, interrupt_id=h["id"], type=h.get("type") or None
            )
            await self.emit(pipe, run["id"], ev)
        if pending:
            pipe.incr(k.interrupts_version)

    def set_run_status(self, pipe: Any, run: dict[str, str], status: str, **fields: str) -> None:
        k = self.keys
        ts = str(now_ms())
        pipe.hset(k.run(run["id"]), mapping={"status": status, "updated_ms": ts, **fields})
        if run["status"] != status:
            seq = run.get("seq") or "0"
            pipe.zrem(k.runs_by_status(run["status"]), run["id"])
            pipe.zadd(k.runs_by_status(status), {run["id"]: float(seq)})
        if status in TERMINAL_RUN_STATUSES:
            # The thread is free for its next run; compare-and-delete is done by the
            # caller's WATCH on the run hash, and only this run can own the marker.
            pipe.delete(k.thread_active_run(run["thread_id"]))
            pipe.zrem(k.runs_due, run["id"])

    # -- interrupts -------------------------------------------------------------------
    def interrupt_indexes(self, status: str, h: dict[str, str]) -> list[str]:
        k = self.keys
        return [
            k.interrupts_by_status(status),
            k.interrupts_by_agent(status, h["agent_id"]),
            k.interrupts_by_thread(status, h["thread_id"]),
            # untyped interrupts share the "_" type index so every record has four
            k.interrupts_by_type(status, h.get("type") or "_"),
        ]

    async def interrupt_hash(self, interrupt_id: str) -> dict[str, str]:
        h: dict[str, str] = await self.r.hgetall(self.keys.interrupt(interrupt_id))
        if not h:
            raise errors.InterruptNotFound(f"no interrupt with id {interrupt_id!r}")
        return h

    async def get_interrupt(self, interrupt_id: str) -> dict[str, Any]:
        return interrupt_view(await self.interrupt_hash(interrupt_id))

    async def interrupts_version(self) -> str:
        return str(await self.r.get(self.keys.interrupts_version) or "0")

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
        if visible is not None:
            if agent_id is not None and agent_id not in visible:
                return Page([], None)
            if agent_id is None and len(visible) == 1:
                agent_id = next(iter(visible))
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

        def keep(h: dict[str, str]) -> bool:
            return (
                h["status"] == status
                and (not agent_id or h["agent_id"] == agent_id)
                and (not itype or h.get("type") == itype)
                and (not thread_id or h["thread_id"] == thread_id)
                and (not run_id or h["run_id"] == run_id)
                and (visible is None or h["agent_id"] in visible)
            )

        hashes, next_cursor = await self._page(index, k.interrupt, keep, limit, cursor, order)
        return Page([interrupt_view(h) for h in hashes], next_cursor)

    async def _page(
        self,
        index: str,
        record_key: Any,
        keep: Any,
        limit: int,
        cursor: str | None,
        order: str,
    ) -> tuple[list[dict[str, str]], str | None]:
        """One page of an index: O(page) reads, filtered, continuing from a cursor.

        A filter the index does not cover may leave a page short; scanning stops after
        a bounded number of records so a page never costs more than that.
        """
        desc = order == "desc"
        bound = decode_cursor(cursor) if cursor else None
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

    async def resolve(
        self,
        interrupt_id: str,
        value: Any,
        *,
        resolved_by: str | None,
        channel: str,
        idempotency_key: str | None = None,
        principal: auth.Principal | None = None,
        single_use: answers.SingleUse | None = None,
    ) -> dict[str, Any]:
        """Accepts the first answer to a pending interrupt; every later one is refused.

        The one path for every channel: it checks the principal (the request's, by
        default) and the answer's schema, and audits the attempt; see broker/core/answers.py.
        Returns the resolved interrupt. A retry carrying the same idempotency key gets
        the original response back.
        """
        return await answers.resolve(
            self,
            interrupt_id,
            value,
            resolved_by=resolved_by,
            channel=channel,
            idempotency_key=idempotency_key,
            principal=principal,
            single_use=single_use,
        )
