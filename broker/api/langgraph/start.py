"""``POST /threads/{id}/runs`` (and ``/wait``, ``/stream``): start a run with input, or
resume the thread's run with ``command: {"resume": …}``.

A run with input is ``POST /runs`` (the store's ``create_run``, then its job); a resume
answers the pending interrupts (broker/api/langgraph/resume.py) and the same broker run
continues, so the run the SDK gets back is that run. The Agent Server's options the
broker cannot honour are refused (422 ``unsupported``) rather than ignored.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from broker.api import visibility
from broker.api.langgraph import resume, threadinfo
from broker.api.langgraph.errors import NoPendingInterrupt, Unsupported
from broker.api.langgraph.follow import Ctx, cursor
from broker.core import auth, errors
from broker.core.codec import now_ms
from broker.core.jobs import enqueue_advance
from broker.core.records import RunRecord

STREAM_MODES = frozenset(
    {
        "values",
        "messages",
        "updates",
        "events",
        "tasks",
        "checkpoints",
        "debug",
        "custom",
        "messages-tuple",
        "tools",
        "lifecycle",
    }
)
SERVED_MODES = frozenset({"values", "updates", "messages", "messages-tuple"})
REFUSED = (
    "interrupt_before",
    "interrupt_after",
    "checkpoint",
    "checkpoint_id",
    "webhook",
    "after_seconds",
    "context",
)


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    assistant_id: str = Field(min_length=1, max_length=200, examples=["naming"])
    input: Any = None
    command: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    stream_mode: str | list[str] = "values"
    if_not_exists: Literal["create", "reject"] = "reject"
    multitask_strategy: Literal["reject", "interrupt", "rollback", "enqueue"] = "reject"


def modes(body: RunCreate) -> frozenset[str]:
    """The stream modes asked for; modes the broker does not produce are sent nothing."""
    asked = [body.stream_mode] if isinstance(body.stream_mode, str) else body.stream_mode
    unknown = sorted(set(asked) - STREAM_MODES)
    if unknown:
        raise errors.InvalidRequest(f"stream_mode: unknown mode(s) {', '.join(unknown)}")
    return frozenset(asked) & SERVED_MODES


def _check(body: RunCreate) -> None:
    extra = body.model_extra or {}
    for name in REFUSED:
        if extra.get(name) not in (None, {}, []):
            raise Unsupported(f"{name}: the broker's runs do not take it")
    if body.config and any(body.config.values()):
        raise Unsupported("config: the broker runs registered graphs with their own config")
    if body.multitask_strategy != "reject":
        raise Unsupported(
            "multitask_strategy: a thread runs one run at a time; answer or cancel its run first"
        )
    if body.command is not None:
        other = sorted(k for k, v in body.command.items() if k != "resume" and v is not None)
        if other:
            raise Unsupported(f"command: only resume is supported, not {', '.join(other)}")
        if body.input is not None:
            raise Unsupported("send either input or command, not both")


def _need(principal: auth.Principal, scope: str) -> None:
    if not principal.allows(scope):
        raise errors.Forbidden(
            f"the API key {principal.actor!r} lacks the {scope!r} scope", scope=scope
        )


async def begin(
    ctx: Ctx,
    registry: dict[str, Any],
    principal: auth.Principal,
    thread_id: str,
    body: RunCreate,
) -> tuple[RunRecord, str, int]:
    """Starts or resumes the thread's run; returns it, the event id to follow it from,
    and the time the request began (its steps are the checkpoints made since)."""
    _check(body)
    resuming = body.command is not None and body.command.get("resume") is not None
    _need(principal, auth.RESOLVE if resuming else auth.RUNS_WRITE)
    agent = body.assistant_id
    if agent not in registry or not principal.sees(agent):
        known = sorted(a for a in registry if principal.sees(a))
        raise errors.AgentNotFound(
            f"no assistant {agent!r}; known: {', '.join(known)}", known_agents=known
        )
    info = await threadinfo.read(ctx.store, thread_id)
    if info is None and body.if_not_exists != "create":
        raise errors.ThreadNotFound(
            f"no thread {thread_id!r}; create it first, or pass if_not_exists='create'"
        )
    if info is not None:
        await threadinfo.seen(ctx.store, principal, thread_id)
        if info.agent_id and info.agent_id != agent:
            raise errors.ThreadAgentMismatch(
                f"thread {thread_id!r} belongs to assistant {info.agent_id!r}",
                thread_agent_id=info.agent_id,
            )
    await visibility.thread(ctx.store, principal, thread_id, agent)
    since_ms = now_ms()
    if resuming:
        active = await ctx.store.active_run(thread_id)
        if active is None:
            raise NoPendingInterrupt(
                f"thread {thread_id} has no run waiting for an answer; start a run with input"
            )
        since = await cursor(ctx.store, active.id)
        assert body.command is not None
        await resume.answer(ctx.store, ctx.queue, active, body.command["resume"], principal)
        return active, since, since_ms
    run = await ctx.store.create_run(
        agent, thread_id, body.input if body.input is not None else {}, body.metadata or {}
    )
    await enqueue_advance(ctx.queue, ctx.store, run.id, "start", (run.thread_id, run.agent_id))
    return run, "0", since_ms
