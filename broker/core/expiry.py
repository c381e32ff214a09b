"""Deadlines on interrupts, and what happens when one passes unanswered.

An interrupt declares its expiry in its value::

    interrupt({"type": "approval", ..., "expires_in": 3600, "default": False})

or the operator configures it per agent and type (``BROKER_EXPIRY``, a JSON list of
``{"agent": "naming", "type": "approval", "expires_in": 3600, "default": false}``; a
rule without ``agent`` or ``type`` matches any). The value wins over the configuration.

``on_expire`` says what the deadline does: ``resume`` applies ``default`` as the answer
and resumes the run (the choice whenever a ``default`` is given), ``fail`` fails the run
(the choice when there is no default), ``cancel`` cancels it. The worker's expiry pass
makes the change with the expire transition (broker/core/channel.py), which, like
resolve, only moves a pending interrupt: of a person's answer and the deadline,
exactly one wins.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from broker.core.settings import parsed_once

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


@parsed_once
def rules(config: list[Any] | None) -> tuple[tuple[str | None, str | None, Expiry], ...]:
    """The configured rules (``BROKER_EXPIRY``): (agent or None, type or None, expiry)."""
    out = []
    for n, rule in enumerate(config or []):
        if not isinstance(rule, dict):
            raise ExpiryConfigError(f"BROKER_EXPIRY rule {n} must be an object")
        out.append((rule.get("agent"), rule.get("type"), parse(rule, f"BROKER_EXPIRY rule {n}")))
    return tuple(out)


def policy(value: Any, agent_id: str, itype: str | None, config: list[Any] | None) -> Expiry | None:
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
