"""Executes a run's graph one attempt at a time and records where it stopped.

A job only names the run. What to do is read from Redis under the thread lease, by the
begin attempt transition, so a job delivered twice, a retry after a crash, and a
reconciler's extra job all converge:
- ``queued``: start the graph with the run's input;
- ``interrupted`` with accepted answers not yet applied: resume with LangGraph's map
  from interrupt id to answer, by thread (never by checkpoint id, which would replay);
- ``running`` (an earlier attempt died): repeat the attempt if the thread's checkpoint
  has not moved, otherwise continue the graph from where that attempt got to.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

# the channel under which LangGraph stores resume values in a checkpoint's pending writes
from langgraph._internal._constants import RESUME
from langgraph.types import Command
from redis.exceptions import RedisError

from agent import receipts
from broker.core import assignment, escalation, expiry, fingerprint, rules, schemas, shapes, undo
from broker.core.codec import now_ms
from broker.core.fence import CONFIG_KEY as FENCE_CONFIG_KEY
from broker.core.fence import Fence, Fenced
from broker.core.jobs import job_where
from broker.core.records import InterruptRecord, RunRecord, RunStatus
from broker.core.saver import primed
from broker.core.settings import Settings
from broker.core.store import Attempt, Store
from broker.core.telemetry import attempt, traceparent
from worker import metrics
from worker.locks import Lease, hold
from worker.output import summarize
from worker.stream import Outcome, run_graph

# an attempt that did not begin; "held" (answers in their undo window) is said as it is
NOT_BEGUN = {"idle": "nothing-to-resume", "missing": "unknown-run", "fenced": "superseded"}

log = logging.getLogger("worker.runner")


class AgentUnavailable(Exception):
    """This worker has no graph for the run's agent; another worker may."""


def _checkpoint_id(snapshot: Any) -> str:
    cfg = snapshot.config or {}
    return str(cfg.get("configurable", {}).get("checkpoint_id") or "")


def _input_only(snapshot: Any) -> bool:
    """Whether the thread's latest checkpoint is a bare input checkpoint: nothing to
    run from it, no question open (so continuing from it would end the graph empty)."""
    meta = snapshot.metadata or {}
    return meta.get("source") == "input" and not snapshot.next and not snapshot.interrupts


class Runner:
    def __init__(
        self,
        store: Store,
        graphs: dict[str, Any],
        saver: Any,
        settings: Settings,
        *,
        worker_id: str = "local",
    ) -> None:
        self.store = store
        self.saver = saver
        self.settings = settings
        self.worker_id = worker_id
        self._graphs = {aid: g.copy(update={"checkpointer": saver}) for aid, g in graphs.items()}

    async def advance(self, run_id: str, job_id: str, *, last_try: bool = False) -> str:
        """Moves the run forward by one attempt; returns what it did.

        ``last_try``: arq will not deliver this job again, so a run this worker cannot
        execute is failed rather than left for another worker.
        """
        k = self.store.keys
        where = job_where(job_id)
        if where is not None:
            # the job names the run's thread and agent: no read before the lease (a run
            # already ended is found so by the begin attempt transition)
            thread_id, agent_id = where
        else:
            status, thread_id, agent_id = await self.store.r.hmget(
                k.run(run_id), ["status", "thread_id", "agent_id"]
            )
            if status is None:
                return "unknown-run"
            if RunStatus(status).terminal:
                await self.store.drop_due(run_id)
                return "finished"
        graph = self._graphs.get(agent_id)
        if graph is None and not last_try:
            # the API knows the agent but this worker does not (a rolling deployment)
            raise AgentUnavailable(agent_id)
        s = self.settings
        lease = Lease(
            self.store.r,
            k.thread_lease(thread_id),
            k.thread_fence(thread_id),
            holder=self.worker_id,
            ttl_s=s.lease_ttl_s,
        )
        # the fence rides in the config to the checkpoint saver: a holder that lost the
        # thread can write no checkpoint either
        config: dict[str, Any] = {
            "configurable": {"thread_id": thread_id, FENCE_CONFIG_KEY: lease.fence}
        }
        # the thread's latest checkpoint (the whole state is read only to recover), read
        # in the round trip that takes the lease (broker/core/saver/_leased.py)
        read: dict[str, Any] = {}

        async def take() -> bool:
            got, read["latest"] = await self.saver.aget_tuple_after(config, lease.acquire_call())
            return bool(got)

        leased = graph is not None and hasattr(self.saver, "aget_tuple_after")
        async with hold(lease, wait_s=s.lease_wait_s, acquire=take if leased else None):
            return await self._advance_locked(run_id, thread_id, job_id, graph, config, read)

    async def _advance_locked(
        self,
        run_id: str,
        thread_id: str,
        job_id: str,
        graph: Any,
        config: dict[str, Any],
        read: dict[str, Any],
    ) -> str:
        if "latest" in read:
            latest = read["latest"]
        else:
            latest = await self.saver.aget_tuple(config) if graph is not None else None
        # the graph's own first read of the checkpoint takes this one
        # (broker/core/saver/_primed.py)
        with primed(thread_id, latest):
            return await self._attempt(
                run_id, job_id, graph, config["configurable"][FENCE_CONFIG_KEY], config, latest
            )

    async def _attempt(
        self,
        run_id: str,
        job_id: str,
        graph: Any,
        fence: Fence,
        config: dict[str, Any],
        latest: Any,
    ) -> str:
        current = _checkpoint_id(latest) if latest is not None else ""
        begun = await self.store.begin_attempt(run_id, current, job_id, fence=fence)
        if isinstance(begun, str):
            return NOT_BEGUN.get(begun, begun)
        with attempt(begun.run, job_id, begun.prior):
            done = await self._attempted(begun, job_id, graph, config, current)
            log.debug("run %s: %s", run_id, done)
            return done

    async def _attempted(
        self, begun: Attempt, job_id: str, graph: Any, config: dict[str, Any], current: str
    ) -> str:
        run_id, run, fence = begun.run.id, begun.run, config["configurable"][FENCE_CONFIG_KEY]
        if run.thread_id != config["configurable"]["thread_id"]:
            # a job id naming another thread than the run's: leave the run to the
            # reconciler, whose jobs read the run first
            log.error("job %s names another thread than run %s has", job_id, run_id)
            return "unknown-run"
        fail = self._failer(job_id, fence)
        if graph is None:
            await fail(run, f"agent {run.agent_id!r} is not registered on any worker", [])
            return "failed"
        config["metadata"] = {"run_id": run_id, "agent_id": run.agent_id}
        if begun.prior == RunStatus.INTERRUPTED:  # in memory: no round trip on the way
            metrics.resumed(run.agent_id, begun.answers, now_ms())
        applying = [h.id for h in begun.answers]
        if begun.answers and self.store.receipts.keys:
            # the answers' signed receipts ride in the config, beside the resume value
            # (which stays exactly the answer): a tool can check them (agent/receipts.py)
            signed = {h.lg_id: (h.resolution or {}).get("receipt") for h in begun.answers}
            config["configurable"].update(
                receipts.resume_config(signed, self.store.receipts.jwks())
            )
        command, action = await self._command(begun, config, current)
        snapshot = None
        if command is None:
            # recovering: what the dead attempt left in the checkpoint says what to do
            snapshot = await graph.aget_state(config)
            if _input_only(snapshot):
                # it saved the input checkpoint but not the input in it (Redis or the
                # worker died between the two): nothing ran, so start over
                command = run.input
        if command == "give-up":
            await fail(run, f"gave up after {run.attempts - 1} attempts", applying)
            return "failed"

        async def publish(etype: str, **data: Any) -> None:
            await self.store.emit(run, etype, **data)

        durability = self.settings.checkpoint_durability
        started = time.monotonic()
        try:
            if command is not None:
                outcome = await run_graph(graph, command, config, publish, durability)
            elif (
                snapshot is not None
                # a task whose writes were saved but whose step's checkpoint was not (the
                # attempt died in between) is in tasks, not in next: resuming applies them
                and (snapshot.next or snapshot.tasks)
                and (not snapshot.interrupts or await self._has_resume_writes(config))
            ):
                outcome = await run_graph(graph, None, config, publish, durability)
            else:
                assert snapshot is not None
                outcome = Outcome(list(snapshot.interrupts), bool(snapshot.next), snapshot.values)
        except (RedisError, ConnectionError, TimeoutError, Fenced):
            # infrastructure, not the graph (or another holder has the thread): the job
            # is retried (worker/main.py), the run stays due
            raise
        except Exception as exc:
            log.exception("run %s failed", run_id)
            await fail(run, f"{type(exc).__name__}: {exc}", applying)
            return "failed"
        finally:
            metrics.attempt(run.agent_id, started)

        if outcome.interrupts:
            pending = [self._record(run, i) for i in outcome.interrupts]
            await self.store.record_interrupts(run, pending, applying, job_id=job_id, fence=fence)
            return f"{action}-interrupted"
        if outcome.stopped:
            await fail(run, "graph stopped before its end, at a breakpoint", applying)
            return "failed"
        if not await self.store.record_finish(
            run_id,
            RunStatus.SUCCEEDED,
            output=summarize(outcome.values),
            applied=applying,
            job_id=job_id,
            fence=fence,
        ):
            return "not-recorded"  # cancelled meanwhile, or another attempt has the run
        await self._retain(run.thread_id)
        return f"{action}-succeeded"

    async def _command(
        self, begun: Attempt, config: dict[str, Any], current: str
    ) -> tuple[Any, str]:
        """What to send the graph, and the name of what this attempt does."""
        run = begun.run
        if begun.prior == RunStatus.QUEUED:
            # a thread with checkpoints may be expiring (an ended run's retention); a new
            # thread has nothing to keep
            if current and hasattr(self.saver, "apersist_thread"):
                await self.saver.apersist_thread(run.thread_id)
            return run.input, "started"
        if begun.prior == RunStatus.INTERRUPTED:
            return self._resume_command(begun.answers), "resumed"
        # running: an earlier attempt died; what it left in the checkpoint says what to do
        if run.attempts > self.settings.run_max_attempts:
            return "give-up", "recovered"
        if current != run.base_checkpoint:
            return None, "recovered"  # it got past its first checkpoint: continue from there
        if run.phase == "resume":
            # LangGraph stores the resume values before running the node: sending the
            # map again would hand an answer to the node's next interrupt too
            if await self._has_resume_writes(config):
                return None, "recovered"
            return self._resume_command(begun.answers), "recovered"
        return run.input, "recovered"

    def _record(self, run: RunRecord, interrupt: Any) -> InterruptRecord:
        """A new record for an interrupt the graph raised (kept only if it is new)."""
        ts = now_ms()
        value = interrupt.value
        itype = shapes.interrupt_type(value)
        # a ladder sets the deadline alone: its last step, when it ends the wait
        ladder = escalation.policy(value, run.agent_id, itype, self.settings.escalation)
        exp = (
            ladder.final
            if ladder
            else expiry.policy(value, run.agent_id, itype, self.settings.expiry)
        )
        about = f"run {run.id} interrupt {interrupt.id}"
        who = assignment.policy(value, run.agent_id, itype, self.settings.assignment, about=about)
        rule, broken = rules.policy(
            value, run.agent_id, itype, self.settings.approval_rules, about=about
        )
        if broken:  # fails closed, as a bad assignment does
            who = assignment.Assignment((assignment.INVALID,), who.watchers if who else ())
        return InterruptRecord.new(
            id=str(uuid.uuid4()),
            lg_id=interrupt.id,
            run_id=run.id,
            thread_id=run.thread_id,
            agent_id=run.agent_id,
            value=value,
            response_schema=schemas.declared_schema(
                value, getattr(interrupt, "response_schema", None)
            ),
            created_ms=ts,
            updated_ms=ts,
            expires_at_ms=ts + int(exp.expires_in_s * 1000) if exp else None,
            on_expire=exp.on_expire if exp else None,
            expiry_default=exp.default if exp else None,
            assignees=who.assignees if who else (),
            watchers=who.watchers if who else (),
            fingerprint=fingerprint.of(run.id, interrupt.id, value),
            # votes are final when cast: a window holds single answers only
            undo_ms=0 if rule else undo.policy(value, run.agent_id, itype, self.settings.undo),
            escalation=tuple(s.record(ts) for s in ladder.steps) if ladder else (),
            rule=rule.record() if rule else None,
            trace=traceparent(),  # the attempt's span: its answer's span goes under it
        )

    async def _has_resume_writes(self, config: dict[str, Any]) -> bool:
        tup = await self.saver.aget_tuple(config)
        return tup is not None and any(w[1] == RESUME for w in tup.pending_writes or [])

    @staticmethod
    def _resume_command(answers: list[InterruptRecord]) -> Command:
        return Command(resume={h.lg_id: (h.resolution or {}).get("value") for h in answers})

    def _failer(self, job_id: str, fence: Fence) -> Any:
        """Records the attempt's run as failed, under its job id and fence."""

        async def fail(run: RunRecord, message: str, applying: list[str]) -> None:
            await self.store.record_finish(
                run.id,
                RunStatus.FAILED,
                error={"message": message},
                applied=applying,
                job_id=job_id,
                fence=fence,
            )
            await self._retain(run.thread_id)

        return fail

    async def _retain(self, thread_id: str) -> None:
        ttl = self.settings.checkpoint_ttl_s
        if ttl and hasattr(self.saver, "aexpire_thread"):
            await self.saver.aexpire_thread(thread_id, ttl)
