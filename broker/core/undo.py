"""The undo window: an accepted answer is held for a while before its run resumes, and
the one who gave it can take it back meanwhile.

An interrupt declares its window in its value::

    interrupt({"type": "approval", ..., "undo_s": 8})

or the operator configures it per agent and type (``BROKER_UNDO``, a JSON list of
``{"agent": "mailer", "type": "approval", "undo_s": 8}``; a rule without ``agent`` or
``type`` matches any). The value wins over the configuration; ``undo_s`` is a number of
seconds in (0, 3600]. An unusable window in a value is ignored with a warning, as an
unusable expiry is; an unusable ``BROKER_UNDO`` stops the broker at start.

With a window, resolve holds the answer as ``accepted`` (``interrupt.accepted``) and
queues the run's job for when the window closes. Until then its author (the same person,
or the same API key) withdraws it with ``POST /interrupts/{id}/withdraw``: the interrupt
is pending again (``interrupt.withdrawn``), its deadline restored, and the queued resume
removed. Once the window has closed, the attempt that job starts releases the answer
(``interrupt.resolved``) and applies it; a withdrawal then is ``409
undo_window_closed``. Both are one transition that checks the status and the time, so
exactly one of them wins. An interrupt decided by votes (broker/core/rules.py) is not
held: each vote is final when cast.
"""

from __future__ import annotations

import logging
from typing import Any

from arq.connections import ArqRedis

from broker.core import admission, audit, auth, errors, jobs
from broker.core.codec import iso, now_ms
from broker.core.records import Channel, InterruptRecord
from broker.core.settings import parsed_once
from broker.core.store import Store

log = logging.getLogger("broker.core.undo")

MAX_UNDO_S = 3600


class UndoConfigError(ValueError):
    """``BROKER_UNDO`` or an interrupt's declaration is unusable; the message says why."""


def parse(decl: dict[str, Any], where: str) -> float:
    seconds = decl.get("undo_s")
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not 0 < seconds <= MAX_UNDO_S
    ):
        raise UndoConfigError(f"{where}: undo_s must be a number of seconds in (0, {MAX_UNDO_S}]")
    return float(seconds)


@parsed_once
def rules(config: list[Any] | None) -> tuple[tuple[str | None, str | None, float], ...]:
    """The configured rules (``BROKER_UNDO``): (agent or None, type or None, seconds)."""
    out = []
    for n, rule in enumerate(config or []):
        if not isinstance(rule, dict):
            raise UndoConfigError(f"BROKER_UNDO rule {n} must be an object")
        out.append((rule.get("agent"), rule.get("type"), parse(rule, f"BROKER_UNDO rule {n}")))
    return tuple(out)


def policy(value: Any, agent_id: str, itype: str | None, config: list[Any] | None) -> int:
    """The undo window of a new interrupt in ms (0: none): declared in its value, else
    the first matching rule."""
    if isinstance(value, dict) and "undo_s" in value:
        try:
            return int(parse(value, "interrupt value") * 1000)
        except UndoConfigError:
            log.warning("ignoring an interrupt's undo window declaration", exc_info=True)
            return 0
    for agent, rtype, seconds in rules(config):
        if agent in (None, agent_id) and rtype in (None, itype):
            return int(seconds * 1000)
    return 0


def author(who: auth.Principal) -> str:
    """Who may withdraw an answer ``who`` gave: the same person, or the same key."""
    if who.person is not None:
        return f"person:{who.person.issuer}|{who.person.subject}"
    return f"key:{who.key_id or ''}"


def accepted_event(h: InterruptRecord, resolution: Any, held_until_ms: int) -> dict[str, Any]:
    return {
        "interrupt_id": h.id,
        "type": h.type,
        "resolution": resolution,
        "held_until": iso(held_until_ms),
    }


async def withdraw(
    store: Store, queue: ArqRedis, interrupt_id: str, who: auth.Principal
) -> dict[str, Any]:
    """Takes back a held answer within its window; returns the interrupt, pending again."""
    h = await admission.visible(store, who, interrupt_id)
    entry = _entry(who, "withdrawn")
    try:
        if not who.allows(auth.RESOLVE):
            raise errors.Forbidden(
                f"the caller lacks the {auth.RESOLVE!r} scope", scope=auth.RESOLVE
            )
        k = store.keys
        job_id = jobs.advance_job_id(h.run_id, h.id, (h.thread_id, h.agent_id))
        res = await store.withdraw_script(
            h.id,
            author=author(who),
            anyone=who.allows(auth.ON_BEHALF),
            audit_entry=entry,
            event={"interrupt_id": h.id, "type": h.type, "withdrawn_by": who.actor},
            deadline_ms=h.deadline_ms,
            job=([k.arq_job_prefix + job_id, k.arq_result_prefix + job_id, k.queue], job_id),
        )
        _raise_for(h.id, res)
    except errors.BrokerError as exc:
        if not isinstance(exc, errors.InterruptNotFound):
            await store.append_audit(h.id, _entry(who, exc.code))
        raise
    return (await store.interrupt(h.id)).view()


def _raise_for(interrupt_id: str, res: list[Any]) -> None:
    outcome = res[0]
    if outcome == "ok":
        return
    if outcome == "not_found":
        raise errors.InterruptNotFound(f"no interrupt with id {interrupt_id!r}")
    if outcome == "not_author":
        raise errors.NotAuthor(
            "only the one who gave this answer withdraws it (or a key with the "
            f"{auth.ON_BEHALF!r} scope)"
        )
    if outcome == "window_closed":
        raise errors.UndoWindowClosed(
            f"the undo window closed at {iso(res[1])}: the run resumes with the answer",
            closed_at=iso(res[1]),
        )
    raise errors.NotHeld(
        f"interrupt {interrupt_id} holds no answer in an undo window (it is {res[1]})",
        status=str(res[1]),
    )


def _entry(who: auth.Principal, outcome: str) -> dict[str, Any]:
    return audit.entry(
        actor=who.actor,
        key_id=who.key_id,
        channel=Channel.REST,
        outcome=outcome,
        payload_digest=None,
        at_ms=now_ms(),
        person=who.person.record() if who.person is not None else None,
    )
