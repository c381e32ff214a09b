"""Executes a run's graph one attempt at a time and records where it stopped.

A job only names the run. What to do is read from Redis under the thread lock, so a
job delivered twice, a retry after a crash, and a reconciler's extra job all converge:
- ``queued``: start the graph with the run's input;
- ``interrupted`` with accepted answers not yet applied: resume with LangGraph's map
  from interrupt id to answer, by thread (never by checkpoint id, which would replay);
- ``running`` (an earlier attempt died): repeat the attempt if the thread's checkpoint
  has not moved, otherwise continue the graph from where that attempt got to.
"""

from __future__ import annotations

import logging
from typing import Any

# the channel under which LangGraph stores resume values in a checkpoint's pending writes
from langgraph._internal._constants import RESUME
from langgraph.types import Command
from redis.exceptions import RedisError

from broker.core import errors
from broker.core.codec import loads
from broker.core.records import TERMINAL_RUN_STATUSES
from broker.core.settings import Settings
from broker.core.store import PendingInterrupt, Store
from worker.ledger import RunLedger, unapplied
from worker.locks import thread_lock
from worker.output import summarize
from worker.stream import run_graph

log = logging.getLogger("worker.runner")


class AgentUnavailable(Exception):
    """This worker has no graph for the run's agent; another worker may."""


def _checkpoint_id(snapshot: Any) -> str:
    cfg = snapshot.config or {}
    return str(cfg.get("configurable", {}).get("checkpoint_id") or "")


class Runner:
    def __init__(
        self, store: Store, graphs: dict[str, Any], saver: Any, settings: Settings
    ) -> None:
        self.store = store
        self.ledger = RunLedger(store)
        self.saver = saver
        self.settings = settings
        self._graphs = {aid: g.copy(update={"checkpointer": saver}) for aid, g in graphs.items()}

    async def advance(self, run_id: str, job_id: str, *, last_try: bool = False) -> str:
        """Moves the run forward by one attempt; returns what it did.

        ``last_try``: arq will not deliver this job again, so a run this worker cannot
        execute is failed rather than left for another worker.
        """
        try:
            run = await self.store.run_hash(run_id)
        except errors.RunNotFound:
            return "unknown-run"
        if run["status"] in TERMINAL_RUN_STATUSES:
            await self.store.r.zrem(self.store.keys.runs_due, run_id)
            return "finished"
        s = self.settings
        async with thread_lock(
            self.store.r,
            self.store.keys.thread_lock(run["thread_id"]),
            ttl_s=s.thread_lock_ttl_s,
            wait_s=s.thread_lock_wait_s,
        ):
            return await self._advance_locked(run_id, job_id, last_try)

    async def _advance_locked(self, run_id: str, job_id: str, last_try: bool) -> str:
        run = await self.store.run_hash(run_id)
        status = run["status"]
        if status in TERMINAL_RUN_STATUSES:
            await self.store.r.zrem(self.store.keys.runs_due, run_id)
            return "finished"
        answers = [h for h in await self.store.interrupt_hashes(run_id) if unapplied(h)]
        if status == "interrupted" and not answers:
            return "nothing-to-resume"  # a duplicate delivery, or an answer already applied
        graph = self._graphs.get(run["agent_id"])
        if graph is None:
            # the API knows the agent but this worker does not (a rolling deployment)
            if not last_try:
                raise AgentUnavailable(run["agent_id"])
            if await self.ledger.begin(
                run_id, expect=status, phase="start", base_checkpoint="", applying=[], job_id=job_id
            ):
                await self._fail(
                    run, f"agent {run['agent_id']!r} is not registered on any worker", []
                )
            return "failed"
        config: dict[str, Any] = {
            "configurable": {"thread_id": run["thread_id"]},
            "metadata": {"run_id": run_id, "agent_id": run["agent_id"]},
        }
        snapshot = await graph.aget_state(config)
        current = _checkpoint_id(snapshot)

        if status == "queued":
            if hasattr(self.saver, "apersist_thread"):
                await self.saver.apersist_thread(run["thread_id"])
            applying: list[str] = []
            phase, base, expect, action = "start", current, "queued", "started"
            command: Any = loads(run["input"])
        elif status == "interrupted":
            applying = [h["id"] for h in answers]
            phase, base, expect, action = "resume", current, "interrupted", "resumed"
            command = self._resume_command(answers)
        elif status == "running":
            # an earlier attempt died; what it left in the checkpoint says what to do
            applying = loads(run.get("applying")) or []
            phase, base = run.get("phase", "start"), run.get("base_checkpoint", "")
            expect, action = "running", "recovered"
            if int(run.get("attempts") or 0) >= self.settings.run_max_attempts:
                if await self.ledger.begin(
                    run_id,
                    expect="running",
                    phase=phase,
                    base_checkpoint=base,
                    applying=applying,
                    job_id=job_id,
                ):
                    await self._fail(run, f"gave up after {run.get('attempts')} attempts", applying)
                return "failed"
            if current != base:
                command = None  # it got past its first checkpoint: continue from there
            elif phase == "resume":
                # LangGraph stores the resume values before running the node: sending the
                # map again would hand an answer to the node's next interrupt too
                if await self._has_resume_writes(config):
                    command = None
                else:
                    command = self._resume_command(await self.ledger.applying_answers(run))
            else:
                command = loads(run["input"])
        else:
            return f"unexpected-status-{status}"
        begun = await self.ledger.begin(
            run_id,
            expect=expect,
            phase=phase,
            base_checkpoint=base,
            applying=applying,
            job_id=job_id,
        )
        if begun is None:
            return "superseded"

        async def publish(etype: str, **data: Any) -> None:
            await self.store.emit(self.store.r, run_id, self.store.event(etype, run, **data))

        try:
            if command is not None:
                await run_graph(graph, command, config, publish)
            elif snapshot.next and (
                not snapshot.interrupts or await self._has_resume_writes(config)
            ):
                await run_graph(graph, None, config, publish)
            snapshot = await graph.aget_state(config)
        except (RedisError, ConnectionError, TimeoutError):
            raise  # infrastructure, not the graph: the job is retried, the run stays due
        except Exception as exc:
            log.exception("run %s failed", run_id)
            await self._fail(run, f"{type(exc).__name__}: {exc}", applying, job_id)
            return "failed"

        if snapshot.interrupts:
            pending = [
                PendingInterrupt(i.id, i.value, getattr(i, "response_schema", None))
                for i in snapshot.interrupts
            ]
            await self.ledger.record_interrupted(run_id, pending, applying, job_id=job_id)
            return f"{action}-interrupted"
        if snapshot.next:
            await self._fail(
                run, f"graph stopped before its end at {list(snapshot.next)}", applying, job_id
            )
            return "failed"
        await self.ledger.record_finished(
            run_id,
            "succeeded",
            output=summarize(snapshot.values),
            applying=applying,
            job_id=job_id,
        )
        await self._retain(run["thread_id"])
        return f"{action}-succeeded"

    async def _has_resume_writes(self, config: dict[str, Any]) -> bool:
        tup = await self.saver.aget_tuple(config)
        return tup is not None and any(w[1] == RESUME for w in tup.pending_writes or [])

    @staticmethod
    def _resume_command(answers: list[dict[str, str]]) -> Command:
        return Command(resume={h["lg_id"]: loads(h["resolution"])["value"] for h in answers})

    async def _fail(
        self, run: dict[str, str], message: str, applying: list[str], job_id: str | None = None
    ) -> None:
        await self.ledger.record_finished(
            run["id"], "failed", error={"message": message}, applying=applying, job_id=job_id
        )
        await self._retain(run["thread_id"])

    async def _retain(self, thread_id: str) -> None:
        ttl = self.settings.checkpoint_ttl_s
        if ttl and hasattr(self.saver, "aexpire_thread"):
            await self.saver.aexpire_thread(thread_id, ttl)
