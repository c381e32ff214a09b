"""API keys for end-to-end tests: configured as SHA-256 digests, as production would, and
presented as bearer tokens (or as ``?api_key=`` where browsers cannot set headers)."""

from __future__ import annotations

import json
import uuid

from broker.core import auth

KeySpec = tuple[str, list[str], list[str] | None]
"""(the key itself, its scopes, the agents it is limited to or None)."""

UNKNOWN_KEY = "not-a-key"


def new_key(name: str) -> str:
    return f"k-{name}-{uuid.uuid4().hex}"


def keys_json(keys: dict[str, KeySpec]) -> str:
    """BROKER_API_KEYS for ``keys``, by name: digests only."""
    return json.dumps(
        [
            {"id": name, "key_sha256": auth.digest(key), "scopes": scopes}
            | ({"agents": agents} if agents else {})
            for name, (key, scopes, agents) in keys.items()
        ]
    )


def presented(keys: dict[str, KeySpec], who: str) -> str | None:
    """The key ``who`` presents: None for "none", an unknown one for "wrong"/"unknown"."""
    if who == "none":
        return None
    if who in ("wrong", "unknown"):
        return UNKNOWN_KEY
    return keys[who][0]


def headers(keys: dict[str, KeySpec], who: str) -> dict[str, str]:
    key = presented(keys, who)
    return {"Authorization": f"Bearer {key}"} if key else {}


def query(keys: dict[str, KeySpec], who: str) -> dict[str, str]:
    key = presented(keys, who)
    return {"api_key": key} if key else {}
