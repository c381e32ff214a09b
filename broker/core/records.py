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
    RESOLVED = "resolved"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class Channel(StrEnum):
    """Where an answer came from; recorded with its resolution and in the audit log."""

    REST = "rest"
    AGUI = "agui"
    LINK = "link"
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
        )

    def to_hash(self) -> dict[str, str]:
        """The fields a new interrupt is created with."""
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
        }
        if self.on_expire:
            h["on_expire"] = self.on_expire
            h["expiry_default"] = dumps(self.expiry_default)
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
        }
