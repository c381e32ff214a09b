"""One-click action links: signed, expiring, single-use answers to one interrupt.

A link's token carries the interrupt id, the choice, an expiry and a random nonce, and
an HMAC-SHA256 over them (``BROKER_LINK_SECRET``). The token names a choice, never an
answer: the answer is derived from the interrupt when the link is used, so a token
cannot be edited into another answer without breaking its signature. The nonce is
marked used in the same script that records the answer, so a link answers once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

from broker.core import shapes
from broker.core.codec import iso, now_ms
from broker.core.records import InterruptRecord
from broker.core.secret import HOW_TO_MAKE, weakness
from broker.core.settings import Settings

# Only `broker dev` falls back to this; anywhere else a link secret must be configured.
_DEV_SECRET = b"interrupt-broker development link key, never for production"
_VERSION = "v1"


class LinkConfigError(ValueError):
    """BROKER_LINK_SECRET is missing or weak where links are on."""


class LinkInvalid(Exception):
    """A link that cannot be used; ``reason`` is "tampered" or "expired"."""

    def __init__(self, reason: str, claims: Claims | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.claims = claims


@dataclass(frozen=True)
class Claims:
    interrupt_id: str
    choice: str
    expires_ms: int
    nonce: str


def secret_key(settings: Settings) -> bytes | None:
    """The link-signing key; None when links are off (no secret, outside dev)."""
    configured = settings.link_secret
    if not configured:
        return _DEV_SECRET if settings.dev else None
    problem = weakness(configured)
    if problem and not settings.dev:
        raise LinkConfigError(
            f"BROKER_LINK_SECRET is refused: {problem}. Make one with: {HOW_TO_MAKE}"
        )
    return configured.encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, f"{_VERSION}.{payload}".encode(), hashlib.sha256).digest())


def sign(key: bytes, claims: Claims) -> str:
    body = {"i": claims.interrupt_id, "c": claims.choice, "e": claims.expires_ms, "n": claims.nonce}
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    return f"{_VERSION}.{payload}.{_sign(key, payload)}"


def verify(key: bytes, token: str, now: int | None = None) -> Claims:
    """The token's claims; raises LinkInvalid when it is forged, edited or expired."""
    try:
        version, payload, signature = token.split(".")
    except ValueError as exc:
        raise LinkInvalid("tampered") from exc
    if version != _VERSION or not hmac.compare_digest(signature, _sign(key, payload)):
        raise LinkInvalid("tampered")
    try:
        body = json.loads(_unb64(payload))
        claims = Claims(str(body["i"]), str(body["c"]), int(body["e"]), str(body["n"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise LinkInvalid("tampered") from exc
    if claims.expires_ms <= (now or now_ms()):
        raise LinkInvalid("expired", claims)
    return claims


def mint(settings: Settings, h: InterruptRecord, now: int | None = None) -> list[dict[str, Any]]:
    """A fresh link per choice of the interrupt ``h``; empty when links are off."""
    key = secret_key(settings)
    if key is None:
        return []
    now = now or now_ms()
    expires = now + settings.link_ttl_s * 1000
    if h.expires_at_ms:
        expires = min(expires, h.expires_at_ms)
    base = settings.public_url.rstrip("/")
    out = []
    for choice in shapes.choices(h.value, h.type):
        claims = Claims(h.id, choice.name, expires, secrets.token_urlsafe(16))
        out.append(
            {
                "choice": choice.name,
                "label": choice.label,
                "url": f"{base}/links/{sign(key, claims)}",
                "expires_at": iso(expires),
            }
        )
    return out
