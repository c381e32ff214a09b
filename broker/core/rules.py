"""Decision rules: an interrupt that several people decide by their votes.

An interrupt declares its rule in its value::

    interrupt({"type": "approval", ..., "approval": {"quorum": 2, "of": "group:finance"}})
    interrupt({"type": "approval", ...,
               "approval": {"chain": ["group:legal", "user:cfo@example.com"]}})

- ``quorum`` N ``of`` a name: N different people whose names include ``of`` approve.
- ``chain``: each name in turn approves (one vote per step, in order); the last
  approval decides.
- ``reject``: ``"first"`` (the default): the first rejection decides; ``"quorum"``
  (quorum rules only): N rejections decide, as N approvals do.

Only approval-shaped questions take votes: an ``approval`` (answered true or false), a
tool review (every decision ``approve``: an approval; any ``reject``: a rejection;
other decisions are no vote) and one gated tool call (its decision likewise). A rule
that is not one of the above, or on any other kind of question, fails closed as a bad
assignment does: the interrupt is assigned to ``assignment.INVALID`` alone, so only a
principal answering on a person's behalf can answer it (or an assigner give it to
someone), and no rule is kept. The operator may configure rules per agent and type
(``BROKER_APPROVAL_RULES``, a JSON list of ``{"agent"?, "type"?, "approval": {...}}``;
a rule without ``agent`` or ``type`` matches any, and applies only to questions votes
can decide); the value wins, as with expiry and assignment. The interrupt's hash keeps
``rule`` (and, once someone votes, ``votes``) only when it has one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from broker.core import assignment, errors, shapes
from broker.core.settings import parsed_once

log = logging.getLogger("broker.core.rules")

MAX_QUORUM = 50
"""The most approvals a quorum may ask for."""
MAX_CHAIN = 10
"""The most steps a chain may have."""


class RuleError(ValueError):
    """A declared rule is unusable; the message says why."""


@dataclass(frozen=True)
class Rule:
    quorum: int
    """Approvals needed (a chain: its length)."""
    of: str | None = None
    chain: tuple[str, ...] = ()
    reject: str = "first"

    def record(self) -> dict[str, Any]:
        """The rule as the interrupt's hash and its JSON keep it."""
        if self.chain:
            return {"chain": list(self.chain), "reject": self.reject}
        return {"quorum": self.quorum, "of": self.of, "reject": self.reject}


def votable(value: Any) -> bool:
    """Whether the question is one votes can decide (approval-shaped)."""
    return shapes.kind(value) in ("approval", "review") or shapes.is_tool_call_request(value)


def parse(raw: Any, value: Any) -> Rule:
    """The rule ``raw`` declares for the question ``value``; RuleError says what is wrong."""
    if not isinstance(raw, dict):
        raise RuleError("approval must be an object: {quorum, of} or {chain}")
    unknown = set(raw) - {"quorum", "of", "chain", "reject"}
    if unknown:
        raise RuleError(f"approval has unknown fields {sorted(unknown)}")
    if not votable(value):
        raise RuleError("only an approval or a tool review is decided by votes")
    reject = raw.get("reject", "first")
    if reject not in ("first", "quorum"):
        raise RuleError('approval.reject must be "first" or "quorum"')
    if ("quorum" in raw) == ("chain" in raw):
        raise RuleError("approval declares exactly one of quorum (with of) and chain")
    try:
        if "chain" in raw:
            steps = raw["chain"]
            if reject != "first":
                raise RuleError('a chain is decided by its first rejection: reject is "first"')
            if not isinstance(steps, list) or not 0 < len(steps) <= MAX_CHAIN:
                raise RuleError(f"approval.chain must list 1 to {MAX_CHAIN} names")
            chain = tuple(
                assignment.names([s], f"approval.chain[{n}]")[0] for n, s in enumerate(steps)
            )
            return Rule(quorum=len(chain), chain=chain)
        n = raw["quorum"]
        if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= MAX_QUORUM:
            raise RuleError(f"approval.quorum must be a whole number from 1 to {MAX_QUORUM}")
        return Rule(quorum=n, of=assignment.names([raw.get("of")], "approval.of")[0], reject=reject)
    except assignment.AssignmentConfigError as exc:
        raise RuleError(str(exc)) from None


@parsed_once
def configured(config: list[Any] | None) -> tuple[tuple[str | None, str | None, Any], ...]:
    """The configured rules (``BROKER_APPROVAL_RULES``): (agent or None, type or None,
    the declaration); RuleError names a bad one."""
    out = []
    for n, rule in enumerate(config or []):
        where = f"BROKER_APPROVAL_RULES rule {n}"
        if not isinstance(rule, dict) or set(rule) - {"agent", "type", "approval"}:
            raise RuleError(f"{where} must be an object {{agent?, type?, approval}}")
        if any(rule.get(f) is not None and not isinstance(rule[f], str) for f in ("agent", "type")):
            raise RuleError(f"{where}: agent and type are strings")
        try:
            parse(rule.get("approval"), {"type": "approval"})
        except RuleError as exc:
            raise RuleError(f"{where}: {exc}") from None
        out.append((rule.get("agent"), rule.get("type"), rule["approval"]))
    return tuple(out)


def policy(
    value: Any,
    agent_id: str = "",
    itype: str | None = None,
    config: list[Any] | None = None,
    *,
    about: str = "",
) -> tuple[Rule | None, bool]:
    """The rule of a new interrupt: declared in its value, else the first matching
    ``BROKER_APPROVAL_RULES`` rule; and whether it is bad (then it fails closed: the
    caller assigns the interrupt to ``assignment.INVALID``)."""
    if isinstance(value, dict) and "approval" in value:
        raw = value["approval"]
    else:
        found = [
            r for a, t, r in configured(config) if a in (None, agent_id) and t in (None, itype)
        ]
        if not found or not votable(value):
            return None, False  # a configured rule applies to the questions votes decide
        raw = found[0]
    try:
        return parse(raw, value), False
    except RuleError as exc:
        log.error(
            "%s declares an unusable decision rule (%s): it is assigned to %s, so only a "
            "principal holding interrupts:on_behalf can answer it",
            about or "an interrupt",
            exc,
            assignment.INVALID,
        )
        return None, True


def vote_of(value: Any, answer: Any) -> bool:
    """The vote an answer casts: approve (True) or reject (False); 422 when the answer
    is neither."""
    if shapes.is_hitl_request(value):
        decisions = answer.get("decisions") if isinstance(answer, dict) else None
        kinds = {d.get("type") for d in decisions or [] if isinstance(d, dict)}
        if decisions and kinds == {"approve"} and len(decisions) == len(value["action_requests"]):
            return True
        if "reject" in kinds:
            return False
    elif shapes.is_tool_call_request(value):
        decided = answer.get("type") if isinstance(answer, dict) else None
        if decided in ("approve", "reject"):
            return decided == "approve"
    elif isinstance(answer, bool):
        return answer
    raise errors.InvalidAnswer(
        "this interrupt is decided by votes: answer it with an approval or a rejection "
        "(true or false; on a tool review, approve or reject decisions)"
    )


def outcome(rule: dict[str, Any], votes: list[dict[str, Any]]) -> bool | None:
    """The decision ``votes`` make under ``rule`` (its record): None while undecided."""
    for v in votes:
        if v.get("decides"):
            return bool(v["vote"])
    approvals = sum(1 for v in votes if v["vote"] is True)
    rejections = len(votes) - approvals
    if "chain" in rule:
        return False if rejections else (True if approvals >= len(rule["chain"]) else None)
    if approvals >= rule["quorum"]:
        return True
    if rejections and (rule["reject"] == "first" or rejections >= rule["quorum"]):
        return False
    return None
