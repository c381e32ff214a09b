"""The transitions a worker makes on a run: begin an attempt, record where it stopped.

Each is one WATCH/MULTI/EXEC transaction on the run hash. Every accepted answer bumps
the run's ``answers`` field, so an answer arriving mid-transaction forces a retry.
"""

from __future__ import annotations

import uuid
from typing import Any

from redis.exceptions import WatchError

from broker.core import expiry
from broker.core.codec import dumps, loads, now_ms
from broker.core.records import interrupt_type
from broker.core.schemas import declared_schema
from broker.core.store import PendingInterrupt, Store


def owns(run: dict[str, str], job_id: str | None) -> bool:
    """Whether an attempt may record on the run: it is running, and (when the attempt
    says which job it is) no later attempt has taken it over since."""
    if not run or run["status"] != "running":
        return False
    return job_id is None or run.get("job_id") == job_id


def unapplied(h: dict[str, str]) -> bool:
    """An accepted answer (a person's, or an expiry's default) the graph has not had yet."""
    return (
        h["status"] in ("resolved", "expired")
        and bool(h.get("resolution"))
        and h.get("applied") != "1"
    )


class RunLedger:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.r = store.r
        self.keys = store.keys

    async def begin(
        self,
        run_id: str,
        *,
        expect: str,
        phase: str,
        base_checkpoint: str,
        applying: list[str],
        job_id: str,
    ) -> dict[str, str] | None:
        """Marks the run running; None when it is no longer in the expected status."""
        k = self.keys
        while True:
            async with self.r.pipeline(transaction=True) as pipe:
                await pipe.watch(k.run(run_id))
                run = await pipe.hgetall(k.run(run_id))
                if not run or run["status"] != expect:
                    return None
                pipe.multi()
                self.store.set_run_status(
                    pipe,
                    run,
                    "running",
                    phase=phase,
                    base_checkpoint=base_checkpoint,
                    applying=dumps(applying),
                    job_id=job_id,
                    attempts=str(int(run.get("attempts") or 0) + 1),
                )
                if expect != "running":
                    etype = "run.started" if phase == "start" else "run.resumed"
                    data: dict[str, Any] = {"interrupt_ids": applying} if applying else {}
                    await self.store.emit(pipe, run_id, self.store.event(etype, run, **data))
                try:
                    await pipe.execute()
                except WatchError:
                    continue
                return run

    async def record_interrupted(
        self,
        run_id: str,
        pending: list[PendingInterrupt],
        applying: list[str],
        *,
        job_id: str | None = None,
    ) -> list[str]:
        """Records the interrupts the graph stopped on; returns the ids of new records.

        An interrupt the graph raises again while its record is still open (pending, or
        answered but not yet applied) keeps that record; every other one is new.
        """
        k = self.keys
        consumed = set(applying)
        while True:
            async with self.r.pipeline(transaction=True) as pipe:
                await pipe.watch(k.run(run_id))
                run = await pipe.hgetall(k.run(run_id))
                if not owns(run, job_id):
                    return []
                # watched before they are read: an expiry or answer landing now retries
                ids = await pipe.zrange(k.run_interrupts(run_id), 0, -1)
                if ids:
                    await pipe.watch(*(k.interrupt(i) for i in ids))
                existing = [h for h in [await pipe.hgetall(k.interrupt(i)) for i in ids] if h]
                open_by_lg = {
                    h["lg_id"]: h
                    for h in existing
                    if h["id"] not in consumed and (h["status"] == "pending" or unapplied(h))
                }
                raised = {p.lg_id for p in pending}
                new = [p for p in pending if p.lg_id not in open_by_lg]
                stale = [h for h in open_by_lg.values() if h["lg_id"] not in raised]
                waiting = [h for h in open_by_lg.values() if h["lg_id"] in raised]
                base_seq = await self.r.incrby(k.seq, max(len(new), 1)) - len(new)
                ts = now_ms()
                pipe.multi()
                for iid in applying:
                    pipe.hset(k.interrupt(iid), "applied", "1")
                new_ids: list[str] = []
                for i, p in enumerate(new):
                    iid = str(uuid.uuid4())
                    new_ids.append(iid)
                    seq = base_seq + i + 1
                    itype = interrupt_type(p.value)
                    schema = declared_schema(p.value, p.response_schema)
                    h = {
                        "id": iid,
                        "lg_id": p.lg_id,
                        "run_id": run_id,
                        "thread_id": run["thread_id"],
                        "agent_id": run["agent_id"],
                        "type": itype or "",
                        "value": dumps(p.value),
                        "response_schema": dumps(schema) if schema is not None else "",
                        "status": "pending",
                        "created_ms": str(ts),
                        "updated_ms": str(ts),
                        "expires_at_ms": "",
                        "seq": str(seq),
                    }
                    exp = expiry.policy(p.value, run["agent_id"], itype, self.store.settings.expiry)
                    if exp is not None:
                        h.update(expiry.fields(exp, ts))
                        pipe.zadd(k.deadlines, {iid: int(h["expires_at_ms"])})
                    pipe.hset(k.interrupt(iid), mapping=h)
                    pipe.zadd(k.run_interrupts(run_id), {iid: seq})
                    for index in self.store.interrupt_indexes("pending", h):
                        pipe.zadd(index, {iid: seq})
                    await self.store.emit(
                        pipe,
                        run_id,
                        self.store.event(
                            "interrupt.created",
                            run,
                            interrupt_id=iid,
                            value=p.value,
                            type=h["type"] or None,
                        ),
                    )
                for h in stale:
                    # the graph moved past it without an answer (e.g. an edited state)
                    pipe.hset(k.interrupt(h["id"]), mapping={"status": "cancelled"})
                    for index in self.store.interrupt_indexes(h["status"], h):
                        pipe.zrem(index, h["id"])
                    for index in self.store.interrupt_indexes("cancelled", h):
                        pipe.zadd(index, {h["id"]: float(h.get("seq") or 0)})
                    await self.store.emit(
                        pipe,
                        run_id,
                        self.store.event(
                            "interrupt.cancelled",
                            run,
                            interrupt_id=h["id"],
                            type=h.get("type") or None,
                        ),
                    )
                pipe.incr(k.interrupts_version)
                self.store.set_run_status(pipe, run, "interrupted", applying="[]")
                if any(unapplied(h) for h in waiting):
                    pipe.zadd(k.runs_due, {run_id: ts}, nx=True)
                else:
                    pipe.zrem(k.runs_due, run_id)
                open_ids = [h["id"] for h in waiting if h["status"] == "pending"] + new_ids
                await self.store.emit(
                    pipe,
                    run_id,
                    self.store.event("run.interrupted", run, interrupt_ids=open_ids),
                )
                try:
                    await pipe.execute()
                except WatchError:
                    continue
                return new_ids

    async def record_finished(
        self,
        run_id: str,
        status: str,
        *,
        output: Any = None,
        error: Any = None,
        applying: list[str],
        job_id: str | None = None,
    ) -> bool:
        """Records the run's end and closes any interrupt still pending; False when the
        run was cancelled meanwhile, or a later attempt owns it."""
        k = self.keys
        while True:
            async with self.r.pipeline(transaction=True) as pipe:
                await pipe.watch(k.run(run_id))
                run = await pipe.hgetall(k.run(run_id))
                if not owns(run, job_id):
                    return False
                still_pending = await self.store.watch_pending(pipe, run_id)
                pipe.multi()
                await self.store.close_pending(pipe, run, still_pending)
                for iid in applying:
                    pipe.hset(k.interrupt(iid), "applied", "1")
                fields = {"applying": "[]"}
                if output is not None:
                    fields["output"] = dumps(output)
                if error is not None:
                    fields["error"] = dumps(error)
                self.store.set_run_status(pipe, run, status, **fields)
                data = {"error": error} if error is not None else {"output": output}
                await self.store.emit(pipe, run_id, self.store.event(f"run.{status}", run, **data))
                try:
                    await pipe.execute()
                except WatchError:
                    continue
                return True

    async def applying_answers(self, run: dict[str, str]) -> list[dict[str, str]]:
        ids = set(loads(run.get("applying")) or [])
        return [h for h in await self.store.interrupt_hashes(run["id"]) if h["id"] in ids]
