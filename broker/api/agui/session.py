"""One AG-UI request: start a run, resume one, or show where the thread stands.

Every answer goes through the channel contract (``channel.answer_many``, channel
``agui``), the same path as REST, so it is validated, recorded and applied exactly
once. Unlike a graph driven in-process, a resume that names nothing pending is refused
with RUN_ERROR rather than silently starting the graph over.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ag_ui.core import (
    BaseEvent,
    CustomEvent,
    EventType,
    MessagesSnapshotEvent,
    RunAgentInput,
    RunErrorEvent,
    RunFinishedEvent,
    RunStartedEvent,
    StateSnapshotEvent,
)
from arq.connections import ArqRedis

from broker.api.agui import resume
from broker.api.agui.messages import new_input_messages, to_agui_messages
from broker.api.agui.translate import Translator, outcome_interrupt
from broker.api.events import TERMINAL_EVENTS, EventHub, follow_run
from broker.api.threads import ThreadStates
from broker.core import auth, channel, errors, runlog
from broker.core.codec import dumps, loads
from broker.core.jobs import enqueue_advance
from broker.core.records import Channel, InterruptRecord, RunRecord, RunStatus
from broker.core.settings import Settings
from broker.core.store import Store

PROTOCOL_VERSION = "1.0"


def is_resume(inp: RunAgentInput) -> bool:
    """Whether the request answers interrupts (resume[] or forwardedProps.command.resume)."""
    if inp.resume:
        return True
    fp = inp.forwarded_props
    command = fp.get("command") if isinstance(fp, dict) else None
    return isinstance(command, dict) and command.get("resume") is not None


class AguiError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class AguiSession:
    def __init__(
        self,
        *,
        store: Store,
        hub: EventHub,
        queue: ArqRedis,
        threads: ThreadStates,
        settings: Settings,
        agent_id: str,
        inp: RunAgentInput,
        principal: auth.Principal,
    ) -> None:
        self.store = store
        self.hub = hub
        self.queue = queue
        self.threads = threads
        self.settings = settings
        self.agent_id = agent_id
        self.inp = inp
        self.principal = principal
        self.thread_id = inp.thread_id
        fp = inp.forwarded_props if isinstance(inp.forwarded_props, dict) else {}
        flag = fp.get("interruptOutcome")
        self.outcome = flag if isinstance(flag, bool) else settings.agui_interrupt_outcome

    def _started(self, broker_run_id: str | None) -> RunStartedEvent:
        meta = {"broker_run_id": broker_run_id} if broker_run_id else None
        return RunStartedEvent(
            type=EventType.RUN_STARTED,
            thread_id=self.thread_id,
            run_id=self.inp.run_id,
            protocol_version=PROTOCOL_VERSION,
            metadata=meta,
        )

    def started_event(self) -> RunStartedEvent:
        """RUN_STARTED for a stream that has nothing else to say first (an error)."""
        return self._started(None)

    def _finished(self, outcome: dict[str, Any] | None) -> RunFinishedEvent:
        body: dict[str, Any] = {
            "type": EventType.RUN_FINISHED,
            "threadId": self.thread_id,
            "runId": self.inp.run_id,
        }
        if outcome is not None:
            body["outcome"] = outcome
        return RunFinishedEvent.model_validate(body)

    def _error(self, code: str, message: str) -> RunErrorEvent:
        return RunErrorEvent(type=EventType.RUN_ERROR, message=message, code=code)

    async def events(self) -> AsyncIterator[BaseEvent | None]:
        """The AG-UI events of this request; None marks a quiet spell (send a keep-alive)."""
        try:
            active = await self.store.active_run(self.thread_id)
            if active and active.agent_id != self.agent_id:
                other = (
                    f"agent {active.agent_id}"
                    if self.principal.sees(active.agent_id)
                    else "another agent"
                )
                raise AguiError(
                    "thread_busy", f"thread {self.thread_id} has an active run of {other}"
                )
            answers = resume.requested(self.inp, self.settings.max_json_depth)
            if answers is not None:
                run, cursor = await self._resume(active, answers)
            elif active is not None:
                cursor = await runlog.last_id(self.store.r, self._log(active.id))
                # re-read after taking the cursor: any later change has a later event id
                run = await self.store.run(active.id)
                pending = await self.store.pending_interrupts(run.id)
                if run.status == RunStatus.INTERRUPTED and pending:
                    yield self._started(run.id)
                    async for e in self._paused(pending):
                        yield e
                    return
                if run.status.terminal:
                    yield self._started(run.id)
                    async for e in self._finish(run, None):
                        yield e
                    return
            else:
                started = await self._start_run()
                if started is None:
                    # nothing new to say on a thread at rest: show where it stands
                    yield self._started(None)
                    async for e in self._snapshots():
                        yield e
                    yield self._finished({"type": "success"})
                    return
                run, cursor = started, "0"
        except AguiError as exc:
            yield self._started(None)
            yield self._error(exc.code, exc.message)
            return
        except errors.BrokerError as exc:
            yield self._started(None)
            yield self._error(exc.code, exc.message)
            return

        yield self._started(run.id)
        if cursor != "0":
            async for e in self._snapshots():
                yield e
        async for maybe in self._follow(run, cursor):
            yield maybe

    # -- the three ways in ------------------------------------------------------------
    async def _resume(
        self, active: RunRecord | None, answers: list[tuple[str | None, str, Any]]
    ) -> tuple[RunRecord, str]:
        if active is None:
            raise AguiError(
                "no_pending_interrupt",
                f"thread {self.thread_id} has nothing waiting for an answer; "
                "send the next message without a resume to start a new run",
            )
        pending = await self.store.pending_interrupts(active.id)
        if not pending:
            raise AguiError(
                "no_pending_interrupt",
                f"thread {self.thread_id} has no pending interrupt (it may have been answered "
                "elsewhere); send the next request without a resume to follow the run",
            )
        by_id = {h.id: h for h in pending} | {h.lg_id: h for h in pending}
        chosen: list[tuple[InterruptRecord, str, Any]] = []
        for iid, status, value in answers:
            if iid is None:
                if len(pending) > 1:
                    raise AguiError(
                        "ambiguous_resume",
                        f"{len(pending)} interrupts are pending on this thread; answer each "
                        "with a resume[] entry naming its id: " + ", ".join(h.id for h in pending),
                    )
                chosen.append((pending[0], status, value))
            elif iid in by_id:
                chosen.append((by_id[iid], status, value))
            else:
                raise AguiError(
                    "unknown_interrupt",
                    f"interrupt {iid} is not pending on thread {self.thread_id}; pending: "
                    + ", ".join(h.id for h in pending),
                )
        cursor = await runlog.last_id(self.store.r, self._log(active.id))
        if any(status == "cancelled" for _, status, _ in chosen):
            # an abandoned question ends the run: the graph cannot continue without it
            await channel.cancel(self.store, self.queue, active.id, self.threads.saver)
            return active, cursor
        await channel.answer_many(
            self.store,
            self.queue,
            [(h, value) for h, _, value in chosen],
            channel=Channel.AGUI,
            principal=self.principal,
            resolved_by=self.principal.key_id or "agui",
            if_match=resume.bound(self.inp, [h for h, _, _ in chosen]),
        )
        return active, cursor

    async def _start_run(self) -> RunRecord | None:
        """Starts a run with the client's new messages; None when it sent none."""
        snap = await self.threads.snapshot(self.agent_id, self.thread_id)
        values = snap.values if snap is not None and isinstance(snap.values, dict) else {}
        known = {m.id for m in values.get("messages", []) if getattr(m, "id", None)}
        new = new_input_messages(self.inp.messages, known)
        if values and not new:
            return None
        run_input: dict[str, Any] = {}
        if isinstance(self.inp.state, dict):
            run_input.update({k: v for k, v in self.inp.state.items() if k != "messages"})
        run_input["messages"] = new
        if self.threads.has_channel(self.agent_id, "copilotkit"):
            run_input["copilotkit"] = {
                "actions": [t.model_dump(by_alias=True) for t in self.inp.tools or []],
                "context": [c.model_dump(by_alias=True) for c in self.inp.context or []],
            }
        run = await self.store.create_run(
            self.agent_id, self.thread_id, run_input, {"agui_run_id": self.inp.run_id}
        )
        await enqueue_advance(
            self.queue, self.store, run.id, "start", (run.thread_id, run.agent_id)
        )
        return run

    # -- following the run -------------------------------------------------------------
    def _log(self, run_id: str) -> str:
        return self.store.keys.run_events(run_id)

    async def _follow(self, run: RunRecord, cursor: str) -> AsyncIterator[BaseEvent | None]:
        run_id = run.id
        translator = Translator()
        async for item in follow_run(
            self.store.r,
            self.hub,
            self._log(run_id),
            runlog.Owner(run_id, run.thread_id, run.agent_id),
            cursor,
            until=TERMINAL_EVENTS,
            queue_max=self.settings.subscriber_queue_max,
            heartbeat_s=self.settings.sse_heartbeat_s,
        ):
            if item is None:
                yield None  # nothing happened for a while: the route sends a keep-alive
                continue
            _, event = item
            for e in translator.feed(event):
                yield e
            etype = event["type"]
            # a withdrawn answer (its undo window open) puts the question back
            if etype in ("run.interrupted", "interrupt.withdrawn"):
                run = await self.store.run(run_id)
                pending = await self.store.pending_interrupts(run_id)
                if run.status != RunStatus.INTERRUPTED or not pending:
                    # every question is already answered: the resume is on its way
                    continue
                for e in translator.close_all():
                    yield e
                async for e in self._paused(pending):
                    yield e
                return
            if etype in TERMINAL_EVENTS:
                for e in translator.close_all():
                    yield e
                async for e in self._finish(await self.store.run(run_id), event):
                    yield e
                return

    async def _paused(self, pending: list[InterruptRecord]) -> AsyncIterator[BaseEvent]:
        async for e in self._snapshots():
            yield e
        for h in pending:
            # JSON-encoded, except a plain string, which goes as it is (as ag-ui-langgraph)
            encoded = h.value if isinstance(h.value, str) else dumps(h.value)
            # the value as ag-ui-langgraph sends it; which record, and its fingerprint,
            # ride beside it for clients that bind their answer (forwardedProps.ifMatch)
            raw = {"interrupt_id": h.id, "fingerprint": h.fingerprint}
            yield CustomEvent(
                type=EventType.CUSTOM, name="on_interrupt", value=encoded, raw_event=raw
            )
        outcome = None
        if pending and self.outcome:
            outcome = {
                "type": "interrupt",
                "interrupts": [outcome_interrupt(h) for h in pending],
            }
        yield self._finished(outcome)

    async def _finish(
        self, run: RunRecord, event: dict[str, Any] | None
    ) -> AsyncIterator[BaseEvent]:
        if run.status == RunStatus.FAILED:
            err = run.error if isinstance(run.error, dict) else {}
            yield self._error("run_failed", str(err.get("message") or "the run failed"))
            return
        async for e in self._snapshots():
            yield e
        cancelled = run.status == RunStatus.CANCELLED
        yield self._finished({"type": "cancelled" if cancelled else "success"})

    async def _snapshots(self) -> AsyncIterator[BaseEvent]:
        snap = await self.threads.snapshot(self.agent_id, self.thread_id)
        if snap is None or not isinstance(snap.values, dict):
            return
        values = snap.values
        state = loads(dumps({k: v for k, v in values.items() if k != "messages"}))
        yield StateSnapshotEvent(type=EventType.STATE_SNAPSHOT, snapshot=state)
        yield MessagesSnapshotEvent(
            type=EventType.MESSAGES_SNAPSHOT,
            messages=to_agui_messages(list(values.get("messages") or [])),
        )
