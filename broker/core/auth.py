"""API keys, their scopes, and the principal a request acts as: a key, or a person.

Keys are configured (``BROKER_API_KEYS`` or ``BROKER_API_KEYS_FILE``) and held only as
SHA-256 digests; a presented key is hashed and compared with every digest in constant
time. A key may be limited to some agents: to it, other agents' runs and interrupts do
not exist (404, never 403, so it learns nothing about them).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker.core.settings import Settings, json_list

READ = "interrupts:read"
RESOLVE = "interrupts:resolve"
RUNS_WRITE = "runs:write"
ON_BEHALF = "interrupts:on_behalf"
"""A service key that answers for a person names them in ``resolved_by``."""
ASSIGN = "interrupts:assign"
"""Changes who may answer an interrupt (``POST /interrupts/{id}/assign``)."""
ADMIN = "admin"
SCOPES = (READ, RESOLVE, RUNS_WRITE, ON_BEHALF, ASSIGN, ADMIN)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class KeyConfigError(ValueError):
    """The key configuration is unusable; the message says which entry and why."""


@dataclass(frozen=True)
class Person:
    """A person, as the configured OpenID provider's verified token names them."""

    subject: str
    issuer: str
    email: str | None = None
    name: str | None = None
    groups: frozenset[str] = frozenset()

    @property
    def names(self) -> frozenset[str]:
        """The assignee names that designate this person: ``user:<subject>``,
        ``user:<email>`` and ``group:<group>`` for each of their groups."""
        out = {f"user:{self.subject}"} | {f"group:{g}" for g in self.groups}
        if self.email:
            out.add(f"user:{self.email}")
        return frozenset(out)

    def record(self) -> dict[str, Any]:
        """The person as an answer, an assignment or an audit entry records them."""
        return {"sub": self.subject, "iss": self.issuer, "email": self.email, "name": self.name}


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a key's id or a person, the scopes, and the agents it may
    see."""

    key_id: str | None
    scopes: frozenset[str]
    agents: frozenset[str] | None = None
    """None: every agent."""
    person: Person | None = None
    """Set when a person's token, not an API key, authenticated the request."""

    def allows(self, scope: str) -> bool:
        return ADMIN in self.scopes or scope in self.scopes

    def sees(self, agent_id: str) -> bool:
        return self.agents is None or agent_id in self.agents

    @property
    def actor(self) -> str:
        if self.person is not None:
            return self.person.email or self.person.subject
        return self.key_id or "anonymous"


OPEN = Principal(key_id=None, scopes=frozenset(SCOPES))
"""Every request when auth is off."""
SYSTEM = Principal(key_id=None, scopes=frozenset(SCOPES))
"""The broker itself (expiry, tools, tests calling the store directly)."""

_current: ContextVar[Principal | None] = ContextVar("broker_principal", default=None)


def current() -> Principal | None:
    """The principal of the request being served, set by the auth gate."""
    return _current.get()


def bind(principal: Principal) -> Any:
    """Makes ``principal`` current; returns the token for ``unbind``."""
    return _current.set(principal)


def unbind(token: Any) -> None:
    _current.reset(token)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    id: str
    key_sha256: str
    scopes: frozenset[str]
    agents: frozenset[str] | None

    def principal(self) -> Principal:
        return Principal(key_id=self.id, scopes=self.scopes, agents=self.agents)


class KeyRing:
    """The configured keys; ``enabled`` is False only when auth is explicitly off."""

    def __init__(self, keys: list[ApiKey], *, enabled: bool) -> None:
        self.keys = keys
        self.enabled = enabled

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        entries: list[Any] = []
        entries += settings.api_keys or []
        if settings.api_keys_file:
            path = Path(settings.api_keys_file)
            try:
                entries += json_list(path.read_text(), f"BROKER_API_KEYS_FILE {path}")
            except OSError as exc:
                raise KeyConfigError(f"BROKER_API_KEYS_FILE {path}: {exc.strerror}") from exc
            except ValueError as exc:
                raise KeyConfigError(str(exc)) from exc
        keys = [_key(entry, n, allow_plaintext=settings.dev) for n, entry in enumerate(entries)]
        seen: set[str] = set()
        for key in keys:
            if key.id in seen:
                raise KeyConfigError(f"API key id {key.id!r} appears twice; ids must be unique")
            seen.add(key.id)
        if len({k.key_sha256 for k in keys}) != len(keys):
            raise KeyConfigError("two API key entries have the same key; give each its own")
        return cls(keys, enabled=settings.auth != "off")

    def authenticate(self, presented: str | None) -> Principal | None:
        """The principal of a presented key; None when it matches no key."""
        if not self.enabled:
            return OPEN
        if not presented:
            return None
        wanted = digest(presented)
        found: ApiKey | None = None
        # every digest is compared, so timing does not tell which key came close
        for key in self.keys:
            if hmac.compare_digest(wanted, key.key_sha256):
                found = key
        return found.principal() if found else None


def _key(entry: Any, n: int, *, allow_plaintext: bool) -> ApiKey:
    where = f"API key entry {n}"
    if not isinstance(entry, dict):
        raise KeyConfigError(f"{where} must be an object with id, key_sha256 and scopes")
    unknown = set(entry) - {"id", "key_sha256", "key", "scopes", "agents", "description"}
    if unknown:
        raise KeyConfigError(f"{where} has unknown fields {sorted(unknown)}")
    key_id = entry.get("id")
    if not isinstance(key_id, str) or not key_id:
        raise KeyConfigError(f"{where} needs an id (a name for logs and the audit)")
    where = f"API key {key_id!r}"
    if "key" in entry:
        if not allow_plaintext:
            raise KeyConfigError(
                f"{where} gives its key in plaintext, which only `broker dev` accepts; "
                f"store its hash instead: key_sha256 = sha256 hex of the key "
                "(printf %s KEY | sha256sum)"
            )
        hashed = digest(str(entry["key"]))
    else:
        hashed = str(entry.get("key_sha256", "")).lower()
        if not _HEX64.match(hashed):
            raise KeyConfigError(f"{where} needs key_sha256: the 64 hex digits of SHA-256(key)")
    scopes = entry.get("scopes")
    if not isinstance(scopes, list) or not scopes:
        raise KeyConfigError(f"{where} needs scopes, a non-empty list of {list(SCOPES)}")
    bad = [s for s in scopes if s not in SCOPES]
    if bad:
        raise KeyConfigError(f"{where} has unknown scopes {bad}; known: {list(SCOPES)}")
    agents = entry.get("agents")
    if agents is not None:
        if not isinstance(agents, list) or not all(isinstance(a, str) for a in agents):
            raise KeyConfigError(f"{where}: agents must be a list of agent ids")
        if ADMIN in scopes:
            raise KeyConfigError(
                f"{where} has the admin scope, which sees every agent; "
                "drop its agents list or the admin scope"
            )
    return ApiKey(
        id=key_id,
        key_sha256=hashed,
        scopes=frozenset(scopes),
        agents=frozenset(agents) if agents is not None else None,
    )
