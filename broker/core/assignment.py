"""Who may answer an interrupt (its assignees), and who follows it (its watchers).

An interrupt declares them in its value::

    interrupt({"type": "approval", ..., "assignees": ["group:finance"],
               "watchers": ["user:cfo@example.com"]})

or the operator configures them per agent and type (``BROKER_ASSIGNMENT``, a JSON list
of ``{"agent": "naming", "type": "approval", "assignees": [...], "watchers": [...]}``; a
rule without ``agent`` or ``type`` matches any). The value wins over the configuration,
as with expiry. A value that declares assignees but names nobody valid fails closed
(``INVALID``): it is never left open to everyone.

A name is ``user:<subject or email>`` or ``group:<group>``; a person's names are those
of their verified token (``auth.Person.names``). Emails compare without case: a name
with ``@`` after ``user:`` is kept, and matched, in lower case. An interrupt with
assignees takes an answer only from a person one of whose names is among them, or from
a principal allowed to answer on a person's behalf (``interrupts:on_behalf``, which
admin keys and auth-off hold); watchers see it and are notified, and may not answer
unless they are assignees too. An interrupt without assignees takes an answer from any
principal with the resolve scope.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from broker.core import audit, auth, comments, errors
from broker.core.codec import loads
from broker.core.records import Channel
from broker.core.settings import parsed_once
from broker.core.store import Store

log = logging.getLogger("broker.core.assignment")

MAX_NAMES = 50
"""Most assignees (and most watchers) one interrupt may name."""
_END, _MID = r"[^\x00-\x20\x7f]", r"[^\x00-\x1f\x7f]"
NAME_PATTERN = rf"^(user|group):{_END}({_MID}{{0,254}}{_END})?$"
"""``user:<subject or email>`` or ``group:<name>``: no control characters, no space at
either end, at most 256 characters after the kind. (Explicit classes rather than
``\\S``: the API's validator and the OpenAPI clients read the pattern alike.)"""
LISTED_PATTERN = rf"^(me|(user|group):{_END}({_MID}{{0,254}}{_END})?)$"
"""``assigned_to``: ``me`` or one name."""
_NAME = re.compile(NAME_PATTERN)
INVALID = "nobody:invalid-assignees"
"""The one assignee of an interrupt whose value declared assignees none of which is a
name (and no rule matched): no person has it (``auth.Person.names`` are ``user:`` and
``group:`` names, and the API accepts no other), so only ``interrupts:on_behalf``
answers it, and ``POST /interrupts/{id}/assign`` gives it to someone."""


@dataclass(frozen=True)
class Assignment:
    assignees: tuple[str, ...]
    watchers: tuple[str, ...] = ()


class AssignmentConfigError(ValueError):
    """``BROKER_ASSIGNMENT`` or a list of names is unusable; the message says why."""


def normalise(name: str) -> str:
    """The form a name is stored and compared in: emails in lower case."""
    kind, _, rest = name.partition(":")
    return f"user:{rest.lower()}" if kind == "user" and "@" in rest else name


def names(raw: Any, where: str, *, strict: bool = True) -> tuple[str, ...]:
    """The valid names of a list, normalised, each once, in order. ``strict``: a bad
    entry raises; otherwise it is logged and left out."""
    if not isinstance(raw, list):
        raise AssignmentConfigError(f"{where} must be a list of 'user:…' or 'group:…' names")
    out: list[str] = []
    for n, item in enumerate(raw):
        if not isinstance(item, str) or not _NAME.match(item):
            message = (
                f"{where}[{n}] is not a name: use 'user:<subject or email>' or 'group:<group>'"
            )
            if strict:
                raise AssignmentConfigError(message)
            log.warning("ignoring an interrupt's assignment entry: %s", message)
            continue
        name = normalise(item)
        if name not in out:
            out.append(name)
    if len(out) > MAX_NAMES:
        raise AssignmentConfigError(f"{where} names {len(out)}; at most {MAX_NAMES} are allowed")
    return tuple(out)


@parsed_once
def rules(config: list[Any] | None) -> tuple[tuple[str | None, str | None, Assignment], ...]:
    """The configured rules (``BROKER_ASSIGNMENT``): (agent or None, type or None, who)."""
    out = []
    for n, rule in enumerate(config or []):
        where = f"BROKER_ASSIGNMENT rule {n}"
        if not isinstance(rule, dict):
            raise AssignmentConfigError(f"{where} must be an object")
        unknown = set(rule) - {"agent", "type", "assignees", "watchers"}
        if unknown:
            raise AssignmentConfigError(f"{where} has unknown fields {sorted(unknown)}")
        for field in ("agent", "type"):
            if rule.get(field) is not None and not isinstance(rule[field], str):
                raise AssignmentConfigError(f"{where}: {field} must be a string")
        if not rule.get("assignees"):
            raise AssignmentConfigError(f"{where} needs assignees, a non-empty list of names")
        who = Assignment(
            names(rule["assignees"], f"{where} assignees"),
            names(rule.get("watchers", []), f"{where} watchers"),
        )
        out.append((rule.get("agent"), rule.get("type"), who))
    return tuple(out)


def policy(
    value: Any,
    agent_id: str,
    itype: str | None,
    config: list[Any] | None,
    *,
    about: str = "",
) -> Assignment | None:
    """The assignment of a new interrupt (``about`` names it in the log): declared in its
    value, else the first matching rule. A value's bad names are logged and left out. A
    declaration that names nobody valid (no valid name, not a list, too many) fails
    closed: the rules apply, and without a matching rule the interrupt is assigned to
    ``INVALID`` alone, so only a principal answering on a person's behalf (or an
    assigner, by reassigning it) can act on it. An explicit empty list means nobody in
    particular."""
    declared = isinstance(value, dict) and ("assignees" in value or "watchers" in value)
    invalid = False
    if declared:
        raw = value.get("assignees")
        assignees = _declared(raw, "assignees")
        watchers = _declared(value.get("watchers"), "watchers") or ()
        if assignees:
            return Assignment(assignees, watchers)
        if raw is None or raw == []:
            return Assignment((), watchers) if watchers else None
        invalid = True
    for agent, rtype, who in rules(config):
        if agent in (None, agent_id) and rtype in (None, itype):
            return who
    if invalid:
        log.error(
            "agent %s: %s declares assignees %s with no valid name, and no "
            "BROKER_ASSIGNMENT rule matches: it is assigned to %s, so only a principal "
            "holding interrupts:on_behalf can answer it until an assigner reassigns it",
            agent_id,
            about or "an interrupt",
            _shown(raw),
            INVALID,
        )
        return Assignment((INVALID,), watchers)
    return None


def _declared(raw: Any, where: str) -> tuple[str, ...] | None:
    """A value's list of names, its bad entries left out; None when the list itself is
    unusable (not a list, too many names)."""
    if raw is None:
        return None
    try:
        return names(raw, where, strict=False)
    except AssignmentConfigError as exc:
        log.warning("ignoring an interrupt's %s: %s", where, exc)
        return None


def _shown(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 200 else text[:200] + "…"


def person_names(person: auth.Person | None) -> frozenset[str]:
    """The names that designate a person, normalised as assignees are."""
    return frozenset(normalise(n) for n in person.names) if person else frozenset()


def checked_names(who: auth.Principal) -> list[str] | None:
    """What the resolve step checks the interrupt's assignees against, at the moment it
    accepts: None when the principal may answer whoever is assigned (on_behalf, admin,
    auth off); else the principal's names (none for a key), one of which must be an
    assignee when the interrupt has any."""
    if who.allows(auth.ON_BEHALF):
        return None
    return sorted(person_names(who.person))


def may_answer(who: auth.Principal, assignees: Iterable[str]) -> bool:
    """Whether ``who`` may answer an interrupt assigned to ``assignees``."""
    wanted = set(assignees)
    if not wanted:
        return True
    mine = checked_names(who)
    return mine is None or not wanted.isdisjoint(mine)


def listed(who: auth.Principal, assigned_to: str | None) -> frozenset[str] | None:
    """The names ``GET /interrupts?assigned_to=`` pages the assignee indexes of: the
    caller's own for ``me`` (none for a key: nothing is assigned to a key, so its page
    is empty), else the one name given (422 when it is not one)."""
    if assigned_to is None:
        return None
    if assigned_to == "me":
        return person_names(who.person)
    try:
        return frozenset(names([assigned_to], "assigned_to"))
    except AssignmentConfigError:
        raise errors.InvalidRequest(
            "assigned_to must be `me`, `user:<subject or email>` or `group:<group>`"
        ) from None


async def reassign(
    store: Store,
    interrupt_id: str,
    assignees: Any,
    watchers: Any,
    *,
    principal: auth.Principal,
    comment: str | None = None,
) -> dict[str, Any]:
    """Changes who may answer a pending interrupt (and who watches it), in one step that
    audits it and emits ``interrupt.assigned``; returns the interrupt. The caller has
    checked that ``principal`` sees the interrupt and may assign."""
    comment = comments.checked(comment)
    try:
        new = list(names(assignees, "assignees"))
        watching = list(names(watchers if watchers is not None else [], "watchers"))
    except AssignmentConfigError as exc:
        raise errors.InvalidRequest(str(exc)) from None
    h = await store.interrupt(interrupt_id)
    person = principal.person.record() if principal.person else None
    by = {"actor": principal.actor, "key_id": principal.key_id, "person": person}
    event = {
        "interrupt_id": interrupt_id,
        "type": h.type,
        "assignees": new,
        "watchers": watching,
        "by": by,
    }
    entry = audit.entry(
        actor=principal.actor,
        key_id=principal.key_id,
        channel=Channel.REST,
        outcome="assigned",
        payload_digest=None,
        person=person,
    ) | {"assignees": new, "watchers": watching, "comment": comment}
    res = await store.assign_script(
        interrupt_id, assignees=new, watchers=watching, event=event, audit_entry=entry
    )
    if res[0] == "ok":
        view: dict[str, Any] = res[1].view()
        return view
    if res[0] == "not_found":
        raise errors.InterruptNotFound(f"no interrupt with id {interrupt_id!r}")
    if res[0] == "expired":
        raise errors.InterruptExpired(f"interrupt {interrupt_id} expired; it can't be reassigned")
    status = res[1]
    if status in ("resolved", "accepted"):
        raise errors.AlreadyResolved(
            f"interrupt {interrupt_id} was already answered; only a pending one is assigned",
            resolution=loads(res[2]),
        )
    raise errors.InterruptClosed(
        f"interrupt {interrupt_id} is {status}; only a pending one is assigned", status=status
    )
