"""Run and interrupt records: typed views of their Redis hashes, and their public JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from broker.core.codec import dumps, iso, loads
from broker.core.shapes import interrupt_type, kind


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    INTERRUPTED = "interrupted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_RUN_STATUSES


TERMINAL_RUN_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})


class InterruptStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    """Answered, the answer held in its undo window (broker/core/undo.py)."""
    RESOLVED = "resolved"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class Channel(StrEnum):
    """Where an answer came from; recorded with its resolution and in the audit log."""

    REST = "rest"
    AGUI = "agui"
    LANGGRAPH = "langgraph"
    LINK = "link"
    SLACK = "slack"
    EXPIRY = "expiry"


@dataclass(frozen=True)
class RunRecord:
    id: str
    thread_id: str
    agent_id: str
    status: RunStatus
    input: Any = None
    metadata: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    seq: int = 0
    created_ms: int = 0
    updated_ms: int = 0
    phase: str = "start"
    base_checkpoint: str = ""
    applying: tuple[str, ...] = ()
    job_id: str | None = None
    output: Any = None
    error: Any = None
    trace: str = ""
    """The ``traceparent`` of the run's root span (broker/core/telemetry.py); "" untraced."""

    @classmethod
    def from_hash(cls, h: dict[str, str]) -> RunRecord:
        return cls(
            id=h["id"],
            thread_id=h["thread_id"],
            agent_id=h["agent_id"],
            status=RunStatus(h["status"]),
            input=loads(h.get("input")),
            metadata=loads(h.get("metadata")) or {},
            attempts=int(h.get("attempts") or 0),
            seq=int(h.get("seq") or 0),
            created_ms=int(h.get("created_ms") or 0),
            updated_ms=int(h.get("updated_ms") or 0),
            phase=h.get("phase") or "start",
            base_checkpoint=h.get("base_checkpoint") or "",
            applying=tuple(loads(h.get("applying")) or ()),
            job_id=h.get("job_id") or None,
            output=loads(h.get("output")),
            error=loads(h.get("error")),
            trace=h.get("trace", ""),
        )

    def to_hash(self) -> dict[str, str]:
        """The fields a new run is created with."""
        return {
            "id": self.id,
            "thread_id": self.thread_id,
            "agent_id": self.agent_id,
            "status": self.status.value,
            "input": dumps(self.input),
            "metadata": dumps(self.metadata),
            "attempts": str(self.attempts),
            "created_ms": str(self.created_ms),
            "updated_ms": str(self.updated_ms),
            **({"trace": self.trace} if self.trace else {}),
        }

    def view(self, pending: list[str]) -> dict[str, Any]:
        """The public JSON of the run, with the ids of its pending interrupts."""
        return {
            "run_id": self.id,
            "thread_id": self.thread_id,
            "agent_id": self.agent_id,
            "status": self.status.value,
            "input": self.input,
            "metadata": self.metadata,
            "pending_interrupts": pending,
            "output": self.output,
            "error": self.error,
            "attempts": self.attempts,
            "created_at": iso(self.created_ms),
            "updated_at": iso(self.updated_ms),
        }


@dataclass(frozen=True)
class InterruptRecord:
    id: str
    lg_id: str
    run_id: str
    thread_id: str
    agent_id: str
    status: InterruptStatus
    value: Any = None
    type: str | None = None
    response_schema: dict[str, Any] | None = None
    created_ms: int = 0
    updated_ms: int = 0
    expires_at_ms: int | None = None
    on_expire: str | None = None
    expiry_default: Any = None
    resolution: dict[str, Any] | None = None
    applied: bool = False
    seq: int = 0
    assignees: tuple[str, ...] = ()
    """Who may answer (broker/core/assignment.py); none: anyone with the resolve scope."""
    watchers: tuple[str, ...] = ()
    fingerprint: str = ""
    """What an answer is bound to (broker/core/fingerprint.py); "" for records made
    before fingerprints."""
    rule: dict[str, Any] | None = None
    """Its decision rule (broker/core/rules.py); None: the first answer decides."""
    votes: tuple[dict[str, Any], ...] = ()
    escalation: tuple[dict[str, Any], ...] = ()
    """The intermediate steps of its ladder (broker/core/escalation.py), each with the
    time it is due (``at_ms``); the last step, when it ends the wait, is its expiry."""
    escalation_next: int = 0
    """How many of them have run."""
    undo_ms: int = 0
    """Its undo window (broker/core/undo.py); 0: an answer is final at once."""
    held_until_ms: int | None = None
    """While ``accepted``: when the window closes."""
    held_by: str = ""
    """While ``accepted``: who may withdraw the answer (``undo.author``)."""
    trace: str = ""
    """The ``traceparent`` of the attempt that raised it; "" untraced."""

    @property
    def next_step(self) -> dict[str, Any] | None:
        """The ladder's next intermediate step, if one is left."""
        if self.escalation_next < len(self.escalation):
            return self.escalation[self.escalation_next]
        return None

    @property
    def deadline_ms(self) -> int | None:
        """When the deadline pass next acts on it: its next step, else its expiry."""
        step = self.next_step
        return int(step["at_ms"]) if step else self.expires_at_ms

    @classmethod
    def from_hash(cls, h: dict[str, str]) -> InterruptRecord:
        return cls(
            id=h["id"],
            lg_id=h["lg_id"],
            run_id=h["run_id"],
            thread_id=h["thread_id"],
            agent_id=h["agent_id"],
            status=InterruptStatus(h["status"]),
            value=loads(h.get("value")),
            type=h.get("type") or None,
            response_schema=loads(h.get("response_schema")),
            created_ms=int(h.get("created_ms") or 0),
            updated_ms=int(h.get("updated_ms") or 0),
            expires_at_ms=int(h["expires_at_ms"]) if h.get("expires_at_ms") else None,
            on_expire=h.get("on_expire") or None,
            expiry_default=loads(h.get("expiry_default")),
            resolution=loads(h.get("resolution")),
            applied=h.get("applied") == "1",
            seq=int(h.get("seq") or 0),
            assignees=tuple(loads(h.get("assignees")) or ()),
            watchers=tuple(loads(h.get("watchers")) or ()),
            fingerprint=h.get("fingerprint", ""),
            rule=loads(h["rule"]) if "rule" in h else None,
            votes=tuple(loads(h["votes"])) if "votes" in h else (),
            escalation=tuple(loads(h.get("escalation")) or ()),
            escalation_next=int(h.get("escalation_next") or 0),
            undo_ms=int(h.get("undo_ms") or 0),
            held_until_ms=int(h["held_until_ms"]) if h.get("held_until_ms") else None,
            held_by=h.get("held_by", ""),
            trace=h.get("trace", ""),
        )

    def to_hash(self) -> dict[str, str]:
        """The fields a new interrupt is created with (an unassigned one has no
        assignee or watcher fields, one without a decision rule no rule field)."""
        h = {
            "id": self.id,
            "lg_id": self.lg_id,
            "run_id": self.run_id,
            "thread_id": self.thread_id,
            "agent_id": self.agent_id,
            "type": self.type or "",
            "value": dumps(self.value),
            "response_schema": dumps(self.response_schema) if self.response_schema else "",
            "status": self.status.value,
            "created_ms": str(self.created_ms),
            "updated_ms": str(self.updated_ms),
            "expires_at_ms": str(self.expires_at_ms) if self.expires_at_ms else "",
            "fingerprint": self.fingerprint,
        }
        if self.on_expire:
            h["on_expire"] = self.on_expire
            h["expiry_default"] = dumps(self.expiry_default)
        if self.assignees:
            h["assignees"] = dumps(list(self.assignees))
        if self.watchers:
            h["watchers"] = dumps(list(self.watchers))
        if self.rule:
            h["rule"] = dumps(self.rule)
        if self.escalation:
            h["escalation"] = dumps(list(self.escalation))
            h["escalation_next"] = str(self.escalation_next)
        if self.undo_ms:
            h["undo_ms"] = str(self.undo_ms)
        if self.trace:
            h["trace"] = self.trace
        return h

    @classmethod
    def new(cls, **fields: Any) -> InterruptRecord:
        """A pending interrupt; its type is derived from its value."""
        return cls(
            status=InterruptStatus.PENDING, type=interrupt_type(fields.get("value")), **fields
        )

    def view(self) -> dict[str, Any]:
        """The public JSON of the interrupt."""
        return {
            "id": self.id,
            "interrupt_id": self.lg_id,
            "run_id": self.run_id,
            "thread_id": self.thread_id,
            "agent_id": self.agent_id,
            "type": self.type,
            "kind": kind(self.value),
            "value": self.value,
            "response_schema": self.response_schema,
            "status": self.status.value,
            "created_at": iso(self.created_ms),
            "expires_at": iso(self.expires_at_ms),
            "expiry": {"on_expire": self.on_expire, "default": self.expiry_default}
            if self.on_expire
            else None,
            "updated_at": iso(self.updated_ms),
            "resolution": self.resolution,
            "assignees": list(self.assignees),
            "watchers": list(self.watchers),
            "fingerprint": self.fingerprint,
            "escalation": escalation_view(self.escalation, self.escalation_next),
            "approval": self.approval(),
            "undo": undo_view(self.undo_ms, self.held_until_ms),
        }

    def approval(self) -> dict[str, Any] | None:
        return voting(self.rule, list(self.votes), self.status)


def voting(rule: Any, votes: list[Any], status: str) -> dict[str, Any] | None:
    """An interrupt's decision rule (broker/core/rules.py) with the votes cast so far,
    and whether they still count (``collecting`` while pending, ``decided`` once
    resolved, else ``closed``); None without a rule."""
    if not rule:
        return None
    state = {"pending": "collecting", "resolved": "decided"}.get(status, "closed")
    return {**rule, "votes": votes, "state": state}


def undo_view(undo_ms: int, held_until_ms: int | str | None) -> dict[str, Any] | None:
    """The public JSON of an undo window: its length, and while an answer is held in it
    when it closes (null when the interrupt has no window)."""
    if not undo_ms:
        return None
    return {"undo_s": undo_ms / 1000, "held_until": iso(held_until_ms)}


def escalation_view(steps: Any, done: int) -> dict[str, Any] | None:
    """The public JSON of a ladder's intermediate steps: each with when it is due, and
    how many have run (null when the interrupt has no ladder)."""
    if not steps:
        return None
    shown = [{k: v for k, v in s.items() if k != "at_ms"} | {"at": iso(s["at_ms"])} for s in steps]
    return {"steps": shown, "done": done}
