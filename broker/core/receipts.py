"""Signed decision receipts: proof, checkable without the broker, that it accepted this
answer to this question.

Every accepted resolution (any channel, and an expiry's default answer) carries
``receipt``, a compact JWS signed with Ed25519 (``alg: EdDSA``), typed
``typ: decision+jwt`` (RFC 8725 explicit typing: a receipt is never mistaken for an
access token or any other JWT). Its claims say which interrupt (``sub``, ``run_id``,
``thread_id``, ``agent_id``, ``fingerprint``), which answer (``answer_sha256``, the
audit log's digest of the recorded value; ``actions_sha256``, one digest per tool call
the answer lets run), who gave it (``by``), through which ``channel``, and when
(``iat``). The signature is made in the process that records the answer, before the
resolve step, and stored in the resolution by that same step.

Keys (``BROKER_RECEIPT_KEYS`` or ``BROKER_RECEIPT_KEYS_FILE``): a JSON list of
``{kid, private_key, active?}``; ``private_key`` is a PKCS#8 PEM (``openssl genpkey
-algorithm ed25519``) or the base64url 32-byte seed. Exactly one key is active and signs;
the others stay published at ``/.well-known/jwks.json`` so receipts they signed still
verify (rotation by ``kid``). ``broker dev`` signs with a built-in key; elsewhere, with no
keys configured, receipts are off (``receipt`` is null) and the process warns at start.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from broker.core import audit, shapes
from broker.core.records import InterruptRecord
from broker.core.settings import Settings, json_list

ALG = "EdDSA"
TYP = "decision+jwt"
DEV_KID = "dev"
# Only `broker dev` falls back to this; anywhere else receipt keys must be configured.
_DEV_SEED = hashlib.sha256(b"interrupt-broker development receipt key, never for production")
HOW_TO_MAKE = (
    "openssl genpkey -algorithm ed25519 (a PEM), or python -c 'import base64, os; "
    'print(base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="))\' (a seed)'
)


@functools.cache
def _jwks(keys: tuple[ReceiptKey, ...]) -> dict[str, Any]:
    return {"keys": [k.jwk() for k in keys]}


class ReceiptConfigError(ValueError):
    """BROKER_RECEIPT_KEYS (or its file) is unusable."""


@dataclass(frozen=True)
class ReceiptKey:
    kid: str
    private: Ed25519PrivateKey
    active: bool

    def jwk(self) -> dict[str, Any]:
        """The public half as an RFC 7517 JWK (OKP, Ed25519)."""
        public = OKPAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**public, "kid": self.kid, "use": "sig", "alg": ALG}


@dataclass(frozen=True)
class ReceiptKeys:
    """The configured keys; ``signer`` is None when receipts are off."""

    keys: tuple[ReceiptKey, ...]
    issuer: str

    @property
    def signer(self) -> ReceiptKey | None:
        return next((k for k in self.keys if k.active), None)

    def jwks(self) -> dict[str, Any]:
        """Every key's public half, as an RFC 7517 JWK Set (built once: the worker hands
        it to every resume)."""
        return _jwks(self.keys)

    def sign(self, claims: dict[str, Any]) -> str | None:
        """The receipt over ``claims``; None when receipts are off."""
        key = self.signer
        if key is None:
            return None
        headers = {"kid": key.kid, "typ": TYP}
        return jwt.encode(claims, key.private, algorithm=ALG, headers=headers)

    def verify(self, receipt: str) -> dict[str, Any]:
        """The claims of a receipt one of these keys signed; jwt.InvalidTokenError if
        it is not one."""
        header = jwt.get_unverified_header(receipt)
        found = next((k for k in self.keys if k.kid == header.get("kid")), None)
        if found is None or header.get("typ") != TYP:
            raise jwt.InvalidTokenError("not a receipt signed by a known key")
        return jwt.decode(
            receipt,
            found.private.public_key(),
            algorithms=[ALG],
            issuer=self.issuer,
            options={"require": ["iss", "sub", "iat"]},
        )


def load(settings: Settings) -> ReceiptKeys:
    """The receipt keys of ``settings``; ReceiptConfigError names what is wrong."""
    entries: list[Any] = list(settings.receipt_keys or [])
    if settings.receipt_keys_file:
        path = Path(settings.receipt_keys_file)
        try:
            entries += json_list(path.read_text(), f"BROKER_RECEIPT_KEYS_FILE {path}")
        except OSError as exc:
            raise ReceiptConfigError(f"BROKER_RECEIPT_KEYS_FILE {path}: {exc.strerror}") from exc
        except ValueError as exc:
            raise ReceiptConfigError(str(exc)) from exc
    issuer = settings.public_url.rstrip("/")
    if not entries:
        dev = (ReceiptKey(DEV_KID, _seed_key(_DEV_SEED.digest()), True),)
        return ReceiptKeys(dev if settings.dev else (), issuer)
    keys = [_key(entry, n, only=len(entries) == 1) for n, entry in enumerate(entries)]
    kids = [k.kid for k in keys]
    for kid in kids:
        if kids.count(kid) > 1:
            raise ReceiptConfigError(f"receipt key kid {kid!r} appears twice; kids must be unique")
    active = [k.kid for k in keys if k.active]
    if len(active) != 1:
        raise ReceiptConfigError(
            f"{len(active)} receipt keys are active ({', '.join(active) or 'none'}): mark "
            'exactly one with "active": true; it signs, the others only verify'
        )
    return ReceiptKeys(tuple(keys), issuer)


def _key(entry: Any, n: int, *, only: bool) -> ReceiptKey:
    where = f"receipt key #{n + 1}"
    if not isinstance(entry, dict):
        raise ReceiptConfigError(f"{where} must be an object {{kid, private_key, active?}}")
    kid = entry.get("kid")
    if not isinstance(kid, str) or not 0 < len(kid) <= 64:
        raise ReceiptConfigError(f"{where} needs a kid: a string of 1 to 64 characters")
    where = f"receipt key {kid!r}"
    active = entry.get("active", only)
    if not isinstance(active, bool):
        raise ReceiptConfigError(f"{where}: active must be true or false")
    text = entry.get("private_key")
    if not isinstance(text, str) or not text.strip():
        raise ReceiptConfigError(f"{where} needs private_key: a PEM or a base64url seed")
    return ReceiptKey(kid, _private(text.strip(), where), active)


def _private(text: str, where: str) -> Ed25519PrivateKey:
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text.encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise ReceiptConfigError(f"{where}: private_key is not a readable PEM ({exc})") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ReceiptConfigError(
                f"{where}: private_key is a {type(key).__name__}, not an Ed25519 key; "
                f"make one with {HOW_TO_MAKE}"
            )
        return key
    try:
        seed = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, binascii.Error) as exc:
        raise ReceiptConfigError(f"{where}: private_key is neither a PEM nor base64url") from exc
    if len(seed) != 32:
        raise ReceiptConfigError(
            f"{where}: a base64url private_key must be a 32-byte Ed25519 seed, not "
            f"{len(seed)} bytes; make one with {HOW_TO_MAKE}"
        )
    return _seed_key(seed)


def _seed_key(seed: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(seed)


def action_sha256(name: Any, args: Any) -> str:
    """SHA-256 of one tool call as canonical JSON: ``{"args": ..., "name": ...}`` with
    sorted keys and no spaces (agent/receipts.py computes the same)."""
    return audit.payload_sha256({"name": name, "args": args})


def approved_actions(value: Any, answer: Any) -> list[str]:
    """The digests of the tool calls ``answer`` lets run: each approved call as the
    review showed it, each edited one as the reviewer wrote it; none for a reject, a
    respond, or an interrupt that is no tool review."""

    def run(decision: Any, action: Any) -> str | None:
        if not isinstance(decision, dict) or not isinstance(action, dict):
            return None
        if decision.get("type") == "approve":
            return action_sha256(action.get("name"), action.get("args"))
        edited = decision.get("edited_action")
        if decision.get("type") == "edit" and isinstance(edited, dict):
            return action_sha256(edited.get("name"), edited.get("args"))
        return None

    pairs: list[tuple[Any, Any]] = []
    if shapes.is_hitl_request(value) and isinstance(answer, dict):
        decisions = answer.get("decisions")
        if isinstance(decisions, list):
            pairs = list(zip(decisions, value["action_requests"], strict=False))
    elif shapes.is_tool_call_request(value):
        pairs = [(answer, value)]
    return [d for d in (run(decision, action) for decision, action in pairs) if d]


def claims(
    h: InterruptRecord, resolution: dict[str, Any], ts_ms: int, issuer: str
) -> dict[str, Any]:
    """What a receipt says about the resolution of ``h`` made at ``ts_ms``."""
    value = resolution["value"]
    return {
        "iss": issuer,
        "sub": h.id,
        "iat": ts_ms // 1000,
        "run_id": h.run_id,
        "thread_id": h.thread_id,
        "agent_id": h.agent_id,
        "fingerprint": h.fingerprint,
        "answer_sha256": audit.payload_sha256(value),
        "actions_sha256": approved_actions(h.value, value),
        "by": {
            "person": resolution.get("person"),
            "key_id": resolution.get("key_id"),
            "resolved_by": resolution.get("resolved_by"),
        },
        "votes": resolution.get("votes") or [],
        "channel": resolution["channel"],
    }
