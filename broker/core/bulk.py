"""Answering many interrupts in one request (``POST /interrupts/resolve``).

Each interrupt is answered on its own through ``channel.answer``, exactly as a single
answer is: the same checks in the same order (visibility, scope, the answer's
contracts), its own audit entry, its own resolve transition with its one winner, and
its run's job queued in that step. There is no all-or-nothing: an interrupt answered
elsewhere first gets its 409 in the results while the rest are accepted, because each
answer is a separate decision about a separate question (docs/design.md, "Bulk
answers"). Nor does an outage undo the answers already accepted: the response lists
them, and the answer Redis failed under and those not started after it get 503.
"""

from __future__ import annotations

import asyncio
from typing import Any

from arq.connections import ArqRedis

from broker.core import assignment, auth, channel, errors
from broker.core.records import Channel, InterruptStatus
from broker.core.store import Store

MAX_ITEMS = 500
"""The most interrupts one request answers."""
CONCURRENCY = 16
"""Answers in flight at once within one request."""
MAX_PAGES = 20
"""The most pages of the pending list a filter reads (each at most ``page_limit_max``)."""


async def pending_matching(
    store: Store,
    principal: auth.Principal,
    *,
    agent_id: str | None,
    itype: str | None,
    thread_id: str | None,
    limit: int = MAX_ITEMS,
    max_pages: int = MAX_PAGES,
) -> tuple[list[str], bool]:
    """The ids of the pending interrupts the principal sees, may answer (assigned
    interrupts are answered by their assignees: a filter skips those of others rather
    than refusing each), and that match, oldest first, at most ``limit``; and whether
    the selection was cut short: more matched, or ``max_pages`` pages were read (a key
    limited to some agents may have to read past many interrupts of others)."""
    found: list[str] = []
    cursor: str | None = None
    for _ in range(max_pages):
        page = await store.list_interrupts(
            status=InterruptStatus.PENDING.value,
            agent_id=agent_id,
            itype=itype,
            thread_id=thread_id,
            run_id=None,
            limit=min(limit + 1 - len(found), store.settings.page_limit_max),
            cursor=cursor,
            visible=principal.agents,
        )
        found += [
            item["id"]
            for item in page.items
            if assignment.may_answer(principal, item.get("assignees") or ())
        ]
        if len(found) > limit or page.next_cursor is None:
            return found[:limit], len(found) > limit
        cursor = page.next_cursor
    return found[:limit], True


async def answer_each(
    store: Store,
    queue: ArqRedis,
    interrupt_ids: list[str],
    value: Any,
    *,
    principal: auth.Principal,
    resolved_by: str | None = None,
    comment: str | None = None,
    concurrency: int = CONCURRENCY,
) -> list[dict[str, Any]]:
    """Answers each interrupt with ``value``, at most ``concurrency`` at once; one
    result per id, in the order given: ``status`` 200 with the resolved ``interrupt``,
    or the status and ``error`` a single answer would have got. When Redis fails under
    an answer, that answer's result is 503 ``redis_unavailable``, no answer is started
    after it (those get 503 too, not attempted), and those accepted stay listed."""
    gate = asyncio.Semaphore(concurrency)
    outage: list[errors.BrokerError] = []

    async def one(interrupt_id: str) -> dict[str, Any]:
        async with gate:
            if outage:
                return _not_attempted(interrupt_id, outage[0])
            try:
                view = await channel.answer(
                    store,
                    queue,
                    interrupt_id,
                    value,
                    channel=Channel.REST,
                    principal=principal,
                    resolved_by=resolved_by,
                    comment=comment,
                )
            except Exception as exc:
                down = errors.unavailable(exc)
                if down is not None:
                    outage.append(down)
                    return _failed(interrupt_id, down)
                if isinstance(exc, errors.BrokerError):
                    return _failed(interrupt_id, exc)
                raise
        return {"interrupt_id": interrupt_id, "status": 200, "interrupt": view}

    done = await asyncio.gather(*(one(i) for i in interrupt_ids), return_exceptions=True)
    for item in done:
        if isinstance(item, BaseException):
            raise item  # a bug, not an outage: once every answer in flight has settled
    return [item for item in done if not isinstance(item, BaseException)]


def _failed(interrupt_id: str, exc: errors.BrokerError) -> dict[str, Any]:
    error: dict[str, Any] = exc.body()["error"]
    return {"interrupt_id": interrupt_id, "status": exc.status_code, "error": error}


def _not_attempted(interrupt_id: str, cause: errors.BrokerError) -> dict[str, Any]:
    return {
        "interrupt_id": interrupt_id,
        "status": cause.status_code,
        "error": {
            "code": cause.code,
            "message": "not attempted: Redis failed under an earlier answer in this "
            f"request ({cause.message}); retry this one",
        },
    }


def summary(results: list[dict[str, Any]], *, truncated: bool) -> dict[str, Any]:
    """The response body: the results, and how many were accepted and refused."""
    accepted = sum(1 for r in results if r["status"] == 200)
    return {
        "results": results,
        "accepted": accepted,
        "refused": len(results) - accepted,
        "truncated": truncated,
    }
