"""Telling a real secret from a placeholder, and making one."""

from __future__ import annotations

import secrets

MIN_SECRET_BYTES = 24
# Long enough that a random secret practically never contains one by chance.
_PLACEHOLDERS = (
    "changeme",
    "change-me",
    "change_me",
    "placeholder",
    "example",
    "secret",
    "password",
)
HOW_TO_MAKE = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def weakness(value: str | bytes, *, min_bytes: int = MIN_SECRET_BYTES) -> str | None:
    """Why ``value`` is no secret (too short, a placeholder word, too repetitive), or None."""
    raw = value.encode() if isinstance(value, str) else value
    if len(raw) < min_bytes:
        return f"it is {len(raw)} bytes; use at least {min_bytes}"
    if isinstance(value, str):
        lowered = value.lower()
        for word in _PLACEHOLDERS:
            if word in lowered:
                return f"it contains the placeholder word {word!r}"
    if len(set(raw)) < 8:
        return "it repeats too few distinct characters"
    return None


def token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)
