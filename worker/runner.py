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

from langgraph.types import Command

from broker.codec import loads
from broker.records import TERMINAL_RUN_STATUSES
from broker.settings import Settings
from broker.store import PendingInterrupt, Store
from worker.ledger import RunLedger, unapplied
from worker.locks import thread_lock
from worker.output import summarize
from worker.stream import run_graph

log = logging.getLogger("worker.runner")


class Runner:
    def __init__(
        self, store: Store, graphs: dict[str, Any], saver: Any, settings: Settings
    ) -> None:
        self.store = store
        self.ledger = RunLedger(store)
        self.saver = saver
        self.settings = settings
        self._graphs = {aid: g.copy(update={"checkpointer": saver}) for aid, g in graphs.items()}

    async def advance(self, run_id: str, job_id: str) -> str:
        """Moves the run forward by one attempt; returns what it did."""
        try:
            run = await self.store.run_hash(run_id)
        except Exception:
            return "unknown-run"
        if run["status"] in TERMINAL_RUN_STATUSES:
            await self.store.r.zrem(self.store.keys.runs_due, run_id)
            return "finished"
        s = self.settings
        async with thread_lock(
            self.store.r,
            self.store.keys.thread_lock(run["thread_id"]),
            ttl_s=s.thread_lock_ttl_s,
            wait_s=s.job_timeout_s,
        ):
            return await self._advance_locked(run_id, job_id)

    async def _advance_locked(self, run_id: str, job_id: str) -> str:
        run = await self.store.run_hash(run_id)
        status = run["status"]
        if status in TERMINAL_RUN_STATUSES:
            await self.store.r.zrem(self.store.keys.runs_due, run_id)
            return "finished"
        graph = self._graphs.get(run["agent_id"])
        config: dict[str, Any] = {
            "configurable": {"thread_id": run["thread_id"]},
            "metadata": {"run_id": run_id, "agent_id": run["agent_id"]},
        }
        if graph is None:
            # the API knows the agent but this worker does not: a deployment mismatch
            if await self.ledger.begin(
                run_id, expect=status, phase="start", base_checkpoint="", applying=[], job_id=job_id
            ):
                await self._fail(
                    run, f"agent {run['agent_id']!r} is not registered on the worker", []
                )
            return "failed"
        current = await self._checkpoint_id(graph, config)

        if status == "queued":
            if hasattr(self.saver, "apersist_thread"):
                await self.saver.apersist_thread(run["thread_id"])
            applying: list[str] = []
            begun = await self.ledger.begin(
                run_id,
                expect="queued",
                phase="start",
                base_checkpoint=current,
                applying=applying,
                job_id=job_id,
            )
            command: Any = loads(run["input"])
            action = "started"
        elif status == "interrupted":
            answers = [h for h in await self.store.interrupt_hashes(run_id) if unapplied(h)]
            if not answers:
                return "nothing-to-resume"
            applying = [h["id"] for h in answers]
            begun = await self.ledger.begin(
                run_id,
                expect="interrupted",
                phase="resume",
                base_checkpoint=current,
                applying=applying,
                job_id=job_id,
            )
            command = self._resume_command(answers)
            action = "resumed"
        elif status == "running":
            applying = loads(run.get("applying")) or []
            begun = await self.ledger.begin(
                run_id,
                expect="running",
                phase=run.get("phase", "start"),
                base_checkpoint=run.get("base_checkpoint", ""),
                applying=applying,
                job_id=job_id,
            )
            if current != run.get("base_checkpoint", ""):
                command = None  # the earlier attempt got past its first checkpoint
            elif run.get("phase") == "resume":
                command = self._resume_command(await self.ledger.applying_answers(run))
            else:
                command = loads(run["input"])
            action = "recovered"
        else:
            return f"unexpected-status-{status}"
        if begun is None:
            return "superseded"

        async def publish(etype: str, **data: Any) -> None:
            await self.store.emit(self.store.r, run_id, self.store.event(etype, run, **data))

        try:
            if command is not None:
                await run_graph(graph, command, config, publish)
            else:
                snapshot = await graph.aget_state(config)
                if snapshot.next and not snapshot.interrupts:
                    await run_graph(graph, None, config, publish)
            snapshot = await graph.aget_state(config)
        except Exception as exc:
            log.exception("run %s failed", run_id)
            await self._fail(run, f"{type(exc).__name__}: {exc}", applying)
            return "failed"

        if snapshot.interrupts:
            pending = [
                PendingInterrupt(i.id, i.value, getattr(i, "response_schema", None))
                for i in snapshot.interrupts
            ]
            await self.ledger.record_interrupted(run_id, pending, applying)
            return f"{action}-interrupted"
        if snapshot.next:
            await self._fail(
                run, f"graph stopped before its end at {list(snapshot.next)}", applying
            )
            return "failed"
        await self.ledger.record_finished(
            run_id, "succeeded", output=summarize(snapshot.values), applying=applying
        )
        await self._retain(run["thread_id"])
        return f"{action}-succeeded"

    @staticmethod
    def _resume_command(answers: list[dict[str, str]]) -> Command:
        return Command(resume={h["lg_id"]: loads(h["resolution"])["value"] for h in answers})

    async def _checkpoint_id(self, graph: Any, config: dict[str, Any]) -> str:
        snapshot = await graph.aget_state(config)
        cfg = snapshot.config or {}
        return str(cfg.get("configurable", {}).get("checkpoint_id") or "")

    async def _fail(self, run: dict[str, str], message: str, applying: list[str]) -> None:
        await self.ledger.record_finished(
            run["id"], "failed", error={"message": message}, applying=applying
        )
        await self._retain(run["thread_id"])

    async def _retain(self, thread_id: str) -> None:
        ttl = self.settings.checkpoint_ttl_s
        if ttl and hasattr(self.saver, "aexpire_thread"):
            await self.saver.aexpire_thread(thread_id, ttl)
