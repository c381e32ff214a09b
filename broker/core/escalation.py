"""Escalation ladders: what happens, step by step, while an interrupt waits unanswered.

An interrupt declares its ladder in its value::

    interrupt({"type": "approval", ..., "escalation": [
        {"after_s": 3600, "remind": True},
        {"after_s": 7200, "assign": ["group:managers"]},
        {"after_s": 86400, "default": False},
    ]})

or the operator configures it per agent and type (``BROKER_ESCALATION``, a JSON list of
``{"agent": "naming", "type": "approval", "escalation": [...]}``; a rule without
``agent`` or ``type`` matches any). ``after_s`` counts from when the interrupt was
raised; the steps' are positive and increasing. A ``remind`` step emits
``interrupt.reminded`` (to the event streams and webhooks) naming who is assigned; an
``assign`` step gives the interrupt to other assignees, as ``POST
/interrupts/{id}/assign`` does. The last step may end the wait: ``default`` (resume with
it) or ``on_expire: fail|cancel``; it is then the interrupt's expiry (its
``expires_at``, applied by the expire transition exactly as ``expires_in`` is). A
ladder without such a step never expires.

A ladder sets the deadline alone: a value declaring both a ladder and ``expires_in``
gets the ladder (its ``expires_in``, ``default`` and ``on_expire`` are ignored, with a
warning). The value wins over the configuration, as with expiry: a value declaring a
ladder or ``expires_in`` is not given a configured ladder. An unusable ladder in a value
is ignored with a warning, as an unusable expiry is; an unusable ``BROKER_ESCALATION``
stops the broker at start.

The worker's deadline pass runs each step when it is due (worker/deadlines.py,
broker/core/escalate.py): the interrupt sits in the deadlines set scored by its next
step, and each intermediate step is one transition that also moves that score to the
step after.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from broker.core.assignment import AssignmentConfigError, names
from broker.core.expiry import Expiry, ExpiryConfigError
from broker.core.expiry import parse as parse_expiry
from broker.core.settings import parsed_once

log = logging.getLogger("broker.core.escalation")

MAX_STEPS = 20
_FINAL = {"default", "on_expire"}


@dataclass(frozen=True)
class Step:
    """An intermediate step: a reminder, or a reassignment (``assign``)."""

    after_s: float
    assign: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return "assign" if self.assign else "remind"

    def record(self, raised_ms: int) -> dict[str, Any]:
        """The step as the interrupt stores it: when it is due (``at_ms``) and what it does."""
        out: dict[str, Any] = {"after_s": self.after_s, "at_ms": raised_ms + _ms(self.after_s)}
        if self.assign:
            out["assign"] = list(self.assign)
        else:
            out["remind"] = True
        return out


@dataclass(frozen=True)
class Ladder:
    steps: tuple[Step, ...]
    """The intermediate steps, in order."""
    final: Expiry | None = None
    """The last step when it ends the wait: the interrupt's expiry."""


class EscalationConfigError(ValueError):
    """``BROKER_ESCALATION`` or an interrupt's ladder is unusable; the message says why."""


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _step(raw: Any, where: str, last: bool) -> Step | Expiry:
    if not isinstance(raw, dict):
        raise EscalationConfigError(f"{where} must be an object")
    after = raw.get("after_s")
    if isinstance(after, bool) or not isinstance(after, int | float) or after <= 0:
        raise EscalationConfigError(f"{where}: after_s must be a positive number of seconds")
    actions = [a for a in ("remind", "assign") if a in raw] + (
        ["final"] if _FINAL & set(raw) else []
    )
    if len(actions) != 1:
        raise EscalationConfigError(
            f"{where} must do one thing: remind, assign, or (last) default / on_expire"
        )
    unknown = set(raw) - {"after_s", "remind", "assign", *_FINAL}
    if unknown:
        raise EscalationConfigError(f"{where} has unknown fields {sorted(unknown)}")
    if actions == ["final"]:
        if not last:
            raise EscalationConfigError(f"{where}: only the last step may end the wait")
        try:
            return parse_expiry({**raw, "expires_in": after}, where)
        except ExpiryConfigError as exc:
            raise EscalationConfigError(str(exc)) from None
    if actions == ["remind"]:
        if raw["remind"] is not True:
            raise EscalationConfigError(f"{where}: remind must be true")
        return Step(float(after))
    try:
        who = names(raw["assign"], f"{where} assign")
    except AssignmentConfigError as exc:
        raise EscalationConfigError(str(exc)) from None
    if not who:
        raise EscalationConfigError(f"{where}: assign needs at least one name")
    return Step(float(after), who)


def parse(raw: Any, where: str) -> Ladder:
    """A ladder from its declaration (a list of steps); raises EscalationConfigError."""
    if not isinstance(raw, list) or not raw:
        raise EscalationConfigError(f"{where} must be a non-empty list of steps")
    if len(raw) > MAX_STEPS:
        raise EscalationConfigError(f"{where} has {len(raw)} steps; at most {MAX_STEPS}")
    parsed = [_step(s, f"{where} step {n}", n == len(raw) - 1) for n, s in enumerate(raw)]
    times = [s["after_s"] for s in raw]
    if any(b <= a for a, b in pairwise(times)):
        raise EscalationConfigError(f"{where}: after_s must increase from step to step")
    if any(_ms(b) <= _ms(a) for a, b in pairwise(times)):
        raise EscalationConfigError(f"{where}: steps must be at least a millisecond apart")
    final = parsed[-1] if isinstance(parsed[-1], Expiry) else None
    steps = tuple(s for s in parsed if isinstance(s, Step))
    return Ladder(steps, final)


@parsed_once
def rules(config: list[Any] | None) -> tuple[tuple[str | None, str | None, Ladder], ...]:
    """The configured rules (``BROKER_ESCALATION``): (agent or None, type or None, ladder)."""
    out = []
    for n, rule in enumerate(config or []):
        where = f"BROKER_ESCALATION rule {n}"
        if not isinstance(rule, dict):
            raise EscalationConfigError(f"{where} must be an object")
        unknown = set(rule) - {"agent", "type", "escalation"}
        if unknown:
            raise EscalationConfigError(f"{where} has unknown fields {sorted(unknown)}")
        for field in ("agent", "type"):
            if rule.get(field) is not None and not isinstance(rule[field], str):
                raise EscalationConfigError(f"{where}: {field} must be a string")
        out.append((rule.get("agent"), rule.get("type"), parse(rule.get("escalation"), where)))
    return tuple(out)


def policy(value: Any, agent_id: str, itype: str | None, config: list[Any] | None) -> Ladder | None:
    """The ladder of a new interrupt: declared in its value, else the first matching rule
    (none when the value declares its own expiry)."""
    if isinstance(value, dict) and "escalation" in value:
        try:
            ladder = parse(value["escalation"], "interrupt value escalation")
        except EscalationConfigError:
            log.warning("ignoring an interrupt's escalation ladder", exc_info=True)
            return None
        if "expires_in" in value:
            log.warning("an interrupt declares a ladder and an expiry: the ladder sets it")
        return ladder
    if isinstance(value, dict) and "expires_in" in value:
        return None
    for agent, rtype, ladder in rules(config):
        if agent in (None, agent_id) and rtype in (None, itype):
            return ladder
    return None
