"""The transitions of runs and interrupts: each is one call of its Lua script."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from broker.core import errors, telemetry
from broker.core.codec import dumps, loads, now_ms
from broker.core.durable import Durability
from broker.core.fence import Fence
from broker.core.ids import ID_RULE, is_id
from broker.core.keys import Keys
from broker.core.records import InterruptRecord, RunRecord, RunStatus
from broker.core.settings import Settings
from broker.core.store._args import candidate, flat, pairs
from broker.core.store._lua import TRANSITIONS, compile_script


@dataclass(frozen=True)
class Attempt:
    """What begin attempt hands the worker: the run as it now is, the status it was in
    before, and the answers this attempt applies."""

    run: RunRecord
    prior: RunStatus
    answers: list[InterruptRecord]


class Transitions:
    """The store's writers. No other module writes run or interrupt state."""

    r: aioredis.Redis
    keys: Keys
    settings: Settings

    def _compile(self) -> None:
        s = self.settings
        self.durable = Durability(self.r, s)
        defs = self.keys.lua()
        self._scripts = {
            name: self.r.register_script(
                compile_script(
                    body,
                    defs,
                    maxlen_global=s.events_maxlen_global,
                    maxlen_run=s.events_maxlen_run,
                    audit_max=s.audit_max,
                    retention_ms=s.retention_s * 1000,
                    tombstone_ms=s.tombstone_s * 1000,
                )
            )
            for name, body in TRANSITIONS.items()
        }

    async def _call(self, name: str, args: list[Any], keys: list[str] | None = None) -> Any:
        """Runs one transition; it returns once the replicas the settings require have it
        (``broker/core/durable.py``), or raises ``RedisUnavailable``."""
        return await self.durable.script(self._scripts[name], keys or [], [now_ms(), *args])

    async def _fenced_call(self, name: str, args: list[Any], fence: Fence | None) -> Any:
        """An attempt's write: with a fence, refused once another holder took the thread."""
        if fence is None:
            return await self._call(name, args)
        return await self._call(name, [*args, fence.token], keys=[fence.key])

    async def create_run(
        self,
        agent_id: str,
        thread_id: str | None,
        input: Any,
        metadata: dict[str, Any],
        *,
        idempotency_key: str | None = None,
    ) -> RunRecord:
        """Queues a new run. With ``idempotency_key``, a retry of the same request gets
        the run the first call created (and starts none); the same key with another
        request raises ``IdempotencyKeyReused``."""
        if thread_id is not None and not is_id(thread_id):
            # a thread id becomes part of key names: one of another shape could name others
            raise errors.InvalidRequest(f"thread_id: a thread id is {ID_RULE}")
        ts = now_ms()
        run = RunRecord(
            id=str(uuid.uuid4()),
            thread_id=thread_id or str(uuid.uuid4()),
            agent_id=agent_id,
            status=RunStatus.QUEUED,
            input=input,
            metadata=metadata,
            created_ms=ts,
            updated_ms=ts,
            trace=telemetry.traceparent(),
        )
        digest = ""
        idem_key = self.keys.run_idempotency("_")
        if idempotency_key:
            idem_key = self.keys.run_idempotency(
                hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
            )
            request = dumps([agent_id, thread_id, input, metadata])
            digest = hashlib.sha256(request.encode()).hexdigest()
        kept = {"digest": digest, "run": [run.id, run.thread_id, agent_id, run.status.value]}
        res = await self._call(
            "create_run",
            [
                run.id,
                run.thread_id,
                agent_id,
                flat(run.to_hash()),
                dumps({"input": input}),
                digest,
                dumps(kept),
                self.settings.idempotency_ttl_s * 1000,
            ],
            keys=[idem_key],
        )
        if res[0] == "idempotent":
            prior = loads(res[1])
            if prior["digest"] != digest:
                raise errors.IdempotencyKeyReused(
                    "this Idempotency-Key was already used to start a different run; "
                    "use a new key for a new run"
                )
            run_id, thread, agent, status = prior["run"]
            return RunRecord(id=run_id, thread_id=thread, agent_id=agent, status=RunStatus(status))
        if res[0] == "busy":
            raise errors.ThreadBusy(
                f"thread {run.thread_id} already has an active run {res[1]}; answer or cancel "
                "it first, or start the run on another thread",
                active_run_id=res[1],
            )
        return run

    async def begin_attempt(
        self, run_id: str, checkpoint_id: str, job_id: str, *, fence: Fence | None = None
    ) -> Attempt | str:
        """Marks the run running for one attempt; a string says why not (``missing``,
        ``finished``, ``idle``: nothing to apply, ``fenced``: another holder has the
        thread)."""
        res = await self._fenced_call("begin_attempt", [run_id, checkpoint_id, job_id], fence)
        if res[0] != "ok":
            return str(res[0])
        return Attempt(
            run=RunRecord.from_hash(pairs(res[2])),
            prior=RunStatus(res[1]),
            answers=[InterruptRecord.from_hash(pairs(flat)) for flat in res[3:]],
        )

    async def record_interrupts(
        self,
        run: RunRecord,
        pending: list[InterruptRecord],
        applied: list[str],
        *,
        job_id: str | None = None,
        fence: Fence | None = None,
    ) -> list[str]:
        """Records the interrupts the graph stopped on; returns the ids of new records."""
        candidates = [candidate(p) for p in pending]
        res = await self._fenced_call(
            "record_interrupts", [run.id, job_id or "", dumps(applied), dumps(candidates)], fence
        )
        return [str(i) for i in res[1:]] if res[0] == "ok" else []

    async def record_finish(
        self,
        run_id: str,
        status: RunStatus,
        *,
        output: Any = None,
        error: Any = None,
        applied: list[str],
        job_id: str | None = None,
        fence: Fence | None = None,
    ) -> bool:
        """Records the run's end and closes any interrupt still pending; False when the
        run was cancelled meanwhile, or a later attempt (or lease holder) owns it."""
        fields: dict[str, str] = {}
        if output is not None:
            fields["output"] = dumps(output)
        if error is not None:
            fields["error"] = dumps(error)
        data = {"error": error} if error is not None else {"output": output}
        res = await self._fenced_call(
            "record_finish",
            [run_id, job_id or "", status.value, dumps(applied), flat(fields), dumps(data)],
            fence,
        )
        return bool(res[0] == "ok")

    async def stop_run(self, run_id: str, status: RunStatus, error: Any = None) -> str | None:
        """Ends an unfinished run as ``cancelled`` or ``failed``; its pending interrupts
        close in the same step. Returns the job id of the attempt running it, if any."""
        fields = {"error": dumps(error)} if error is not None else {}
        data = {"error": error} if error is not None else {}
        res = await self._call("cancel", [run_id, status.value, flat(fields), dumps(data)])
        if res[0] == "missing":
            raise errors.RunNotFound(f"no run with id {run_id!r}")
        if res[0] == "finished":
            raise errors.RunFinished(
                f"run {run_id} already finished with status {res[1]}", status=res[1]
            )
        return str(res[1]) or None

    async def resolve_script(
        self,
        interrupt_id: str,
        *,
        resolution: dict[str, Any],
        event: dict[str, Any],
        response: dict[str, Any],
        idempotency: tuple[str, str] | None,
        audit_entry: dict[str, Any],
        single_use: tuple[str, int] | None,
        job: tuple[list[str], list[Any]] | None = None,
        answerer: list[str] | None = None,
        fingerprint: str | None = None,
        hold: tuple[int, str, dict[str, Any]] | None = None,
    ) -> list[Any]:
        """The raw resolve transition; broker/core/channel.py interprets its outcome.

        ``idempotency`` is (key digest, payload digest); ``single_use`` (nonce, ttl ms);
        ``job`` the run's job to queue in the same step, as broker/core/jobs.py builds it
        (its keys; its id, the job, its ttl ms, "1" to wake); ``answerer`` the names of
        the one answering (``assignment.checked_names``; None: it may answer whoever is
        assigned), one of which an interrupt's assignees must hold as it is accepted;
        ``fingerprint`` the one the answer is bound to (None: any), which the interrupt
        must still have as it is accepted; ``hold`` (when its undo window closes, who may
        withdraw it, the interrupt.accepted event) holds the answer as accepted.
        """
        k = self.keys
        idem_key = k.idempotency(interrupt_id, idempotency[0] if idempotency else "_")
        nonce_key = k.link_used(single_use[0] if single_use else "_")
        payload_digest = idempotency[1] if idempotency else ""
        res: list[Any] = await self._call(
            "resolve",
            [
                interrupt_id,
                dumps(resolution),
                dumps(event),
                dumps({"digest": payload_digest, "body": response}),
                payload_digest,
                self.settings.idempotency_ttl_s * 1000,
                dumps(audit_entry),
                single_use[0] if single_use else "",
                max(single_use[1], 1000) if single_use else 0,
                idempotency[0] if idempotency else "",
                "" if answerer is None else dumps(answerer),
                fingerprint or "",
                *(job[1] if job else ["", "", "", ""] if hold else []),
                *([hold[0], hold[1], dumps(hold[2])] if hold else []),
            ],
            keys=[idem_key, nonce_key, *(job[0] if job else [])],
        )
        return res

    async def expire_script(
        self,
        interrupt_id: str,
        *,
        resolution: dict[str, Any] | None,
        end_status: RunStatus | None,
        event: dict[str, Any],
        audit_entry: dict[str, Any],
        error: Any = None,
        now: int | None = None,
    ) -> tuple[str, str, str | None]:
        """The raw expire transition: (outcome, run id, job id of a stopped attempt)."""
        fields = {"error": dumps(error)} if error is not None else {}
        end_data = {"error": error} if error is not None else {}
        res = await self.durable.script(
            self._scripts["expire"],
            [],
            [
                now or now_ms(),
                interrupt_id,
                dumps(resolution) if resolution is not None else "",
                end_status.value if end_status else "",
                dumps(event),
                dumps(audit_entry),
                flat(fields),
                dumps(end_data),
            ],
        )
        if res[0] != "ok":
            return str(res[0]), "", None
        return "ok", str(res[1]), str(res[2]) or None

    async def assign_script(
        self,
        interrupt_id: str,
        *,
        assignees: list[str],
        watchers: list[str],
        event: dict[str, Any],
        audit_entry: dict[str, Any],
    ) -> list[Any]:
        """The raw assign transition (broker/core/assignment.py interprets its outcome);
        the step adds ``previous_assignees`` to the event and the audit entry."""
        res: list[Any] = await self._call(
            "assign",
            [
                interrupt_id,
                dumps(assignees) if assignees else "",
                dumps(watchers) if watchers else "",
                dumps(event),
                dumps(audit_entry),
            ],
        )
        if res[0] == "ok":
            return ["ok", InterruptRecord.from_hash(pairs(res[1]))]
        return list(res)

    async def escalate_script(
        self,
        interrupt_id: str,
        step: int,
        *,
        event: dict[str, Any],
        audit_entry: dict[str, Any],
        now: int,
    ) -> str:
        """The raw escalate transition: runs the ladder step ``step`` (the interrupt's next,
        as read) at ``now``; its outcome ('ok', or why not)."""
        args = [now, interrupt_id, step, dumps(event), dumps(audit_entry)]
        res = await self.durable.script(self._scripts["escalate"], [], args)
        return str(res[0])

    async def emit(self, run: RunRecord, etype: str, *, client: Any = None, **data: Any) -> str:
        """Appends one event that changes no state (a message or tool-call delta);
        ``client`` queues it on a pipeline instead."""
        args = [now_ms(), run.id, run.thread_id, run.agent_id, etype, dumps(data)]
        return str(await self._scripts["emit"](keys=[], args=args, client=client))
