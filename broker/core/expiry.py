"""Deadlines on interrupts, and what happens when one passes unanswered.

An interrupt declares its expiry in its value::

    interrupt({"type": "approval", ..., "expires_in": 3600, "default": False})

or the operator configures it per agent and type (``BROKER_EXPIRY``, a JSON list of
``{"agent": "naming", "type": "approval", "expires_in": 3600, "default": false}``; a
rule without ``agent`` or ``type`` matches any). The value wins over the configuration.

``on_expire`` says what the deadline does: ``resume`` applies ``default`` as the answer
and resumes the run (the choice whenever a ``default`` is given), ``fail`` fails the run
(the choice when there is no default), ``cancel`` cancels it. The worker's expiry pass
makes the change with the EXPIRE script, which, like RESOLVE, only moves a pending
interrupt: of a person's answer and the deadline, exactly one wins.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from broker.core import audit, errors, schemas
from broker.core.codec import dumps, iso, loads, now_ms
from broker.core.store import Store

log = logging.getLogger("broker.core.expiry")

ON_EXPIRE = ("resume", "fail", "cancel")
_NO_DEFAULT = object()


@dataclass(frozen=True)
class Expiry:
    expires_in_s: float
    on_expire: str
    default: Any = None


class ExpiryConfigError(ValueError):
    """``BROKER_EXPIRY`` or an interrupt's declaration is unusable; the message says why."""


def parse(decl: dict[str, Any], where: str) -> Expiry:
    seconds = decl.get("expires_in")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
        raise ExpiryConfigError(f"{where}: expires_in must be a positive number of seconds")
    default = decl.get("default", _NO_DEFAULT)
    on_expire = decl.get("on_expire") or ("fail" if default is _NO_DEFAULT else "resume")
    if on_expire not in ON_EXPIRE:
        raise ExpiryConfigError(f"{where}: on_expire must be one of {list(ON_EXPIRE)}")
    return Expiry(float(seconds), on_expire, None if default is _NO_DEFAULT else default)


@lru_cache(maxsize=8)
def rules(config: str | None) -> tuple[tuple[str | None, str | None, Expiry], ...]:
    """The configured rules, parsed once: (agent or None, type or None, expiry)."""
    if not config:
        return ()
    try:
        data = json.loads(config)
    except json.JSONDecodeError as exc:
        raise ExpiryConfigError(f"BROKER_EXPIRY is not valid JSON: {exc}") from exc
    if not isinstance(data, list):
        raise ExpiryConfigError("BROKER_EXPIRY must be a JSON list of rules")
    out = []
    for n, rule in enumerate(data):
        if not isinstance(rule, dict):
            raise ExpiryConfigError(f"BROKER_EXPIRY rule {n} must be an object")
        out.append((rule.get("agent"), rule.get("type"), parse(rule, f"BROKER_EXPIRY rule {n}")))
    return tuple(out)


def policy(value: Any, agent_id: str, itype: str | None, config: str | None) -> Expiry | None:
    """The expiry of a new interrupt: declared in its value, else the first matching rule."""
    if isinstance(value, dict) and "expires_in" in value:
        try:
            return parse(value, "interrupt value")
        except ExpiryConfigError:
            log.warning("ignoring an interrupt's expiry declaration", exc_info=True)
            return None
    for agent, rtype, exp in rules(config):
        if agent in (None, agent_id) and rtype in (None, itype):
            return exp
    return None


def fields(exp: Expiry, created_ms: int) -> dict[str, str]:
    """The interrupt hash fields that record an expiry."""
    return {
        "expires_at_ms": str(created_ms + int(exp.expires_in_s * 1000)),
        "on_expire": exp.on_expire,
        "expiry_default": dumps(exp.default),
    }


async def expire(store: Store, interrupt_id: str, now: int | None = None) -> tuple[str, str]:
    """Expires one interrupt if it is still pending and due: returns (outcome, on_expire).

    outcome is "ok" when this call expired it; anything else means it changed nothing.
    """
    now = now or now_ms()
    k = store.keys
    h = await store.r.hgetall(k.interrupt(interrupt_id))
    if not h:
        await store.r.zrem(k.deadlines, interrupt_id)
        return "gone", ""
    on_expire = h.get("on_expire") or "fail"
    resolution: dict[str, Any] | None = None
    outcome = "expired"
    if on_expire == "resume":
        default = loads(h.get("expiry_default"))
        try:
            schemas.check_answer(loads(h.get("value")), loads(h.get("response_schema")), default)
        except errors.InvalidAnswer as exc:
            # never hand the graph an answer that breaks its own contract
            log.error("interrupt %s: default answer is invalid (%s); failing", interrupt_id, exc)
            on_expire, outcome = "fail", exc.code
        else:
            resolution = {
                "value": default,
                "resolved_by": "expiry",
                "resolved_at": iso(now),
                "channel": "expiry",
                "key_id": None,
            }
            outcome = audit.ACCEPTED
    run = {"id": h["run_id"], "thread_id": h["thread_id"], "agent_id": h["agent_id"]}
    event = store.event(
        "interrupt.expired",
        run,
        interrupt_id=interrupt_id,
        type=h.get("type") or None,
        on_expire=on_expire,
        resolution=resolution,
    )
    entry = audit.entry(
        actor="expiry",
        key_id=None,
        channel="expiry",
        outcome=outcome,
        payload_digest=audit.payload_sha256(resolution["value"]) if resolution else None,
        at_ms=now,
    )
    s = store.settings
    res = await store._expire(
        keys=[
            k.interrupt(interrupt_id),
            *store.interrupt_indexes("pending", h),
            *store.interrupt_indexes("expired", h),
            k.interrupts_version,
            k.runs_due,
            k.events,
            k.run_events(h["run_id"]),
            k.run(h["run_id"]),
            k.seq,
            k.deadlines,
            k.audit(interrupt_id),
        ],
        args=[
            interrupt_id,
            now,
            dumps(resolution) if resolution else "",
            event,
            s.events_maxlen_global,
            s.events_maxlen_run,
            h["run_id"],
            dumps(entry),
            s.audit_max,
        ],
    )
    return str(res[0]), on_expire
