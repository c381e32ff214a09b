"""Reading and verifying the broker's signed decision receipts from inside a graph.

When the broker resumes a run, the receipts of the answers it resumes with ride in the
run's config, beside the answer itself (the resume value stays exactly the answer):
``config["configurable"]["broker_receipts"]`` maps each LangGraph interrupt id to its
receipt, and ``config["configurable"]["broker_receipt_jwks"]`` holds the broker's public
receipt keys (a JWK Set, the one ``/.well-known/jwks.json`` serves). Neither is there when
the broker signs no receipts.

A tool that acts on a person's approval calls ``receipt_for(config, name, args)``: it
returns the verified claims of a receipt that approves exactly this call (its
``actions_sha256`` names the SHA-256 of ``{"name", "args"}`` as canonical JSON) on this
thread, or raises ``ReceiptRefused``. ``verify`` checks any receipt against a JWK Set or
a JWKS URL with PyJWT. This module imports nothing of the broker's: a graph checks the
broker, it does not trust it by import.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jwt

CONFIG_RECEIPTS = "broker_receipts"
CONFIG_JWKS = "broker_receipt_jwks"
ALG = "EdDSA"
TYP = "decision+jwt"
LEEWAY_S = 60
"""Clock skew allowed between the process that signed and the one that verifies."""


class ReceiptRefused(Exception):
    """No valid receipt: a forged or tampered one, one for another question or other
    arguments, or none at all."""


class ReceiptsOff(ReceiptRefused):
    """The broker signs no receipts (no keys in the run's config, none given)."""


def canonical_sha256(value: Any) -> str:
    """SHA-256 of ``value`` as canonical JSON (sorted keys, no spaces), as the broker's
    ``answer_sha256`` and ``actions_sha256`` are computed."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def action_sha256(name: str, args: Mapping[str, Any]) -> str:
    """The digest a receipt's ``actions_sha256`` lists for the tool call ``name(args)``."""
    return canonical_sha256({"name": name, "args": dict(args)})


def resume_config(receipts: Mapping[str, str | None], jwks: dict[str, Any]) -> dict[str, Any]:
    """The ``configurable`` entries a run resumes with: the receipts by LangGraph
    interrupt id (answers without one left out), and the keys to check them with."""
    signed = {lg_id: r for lg_id, r in receipts.items() if r}
    return {CONFIG_RECEIPTS: signed, CONFIG_JWKS: jwks}


@lru_cache(maxsize=8)
def _client(jwks_url: str) -> jwt.PyJWKClient:
    # caches the set (5 minutes) and fetches again for a kid it does not know
    return jwt.PyJWKClient(jwks_url, lifespan=300, timeout=5)


def _key(kid: str, jwks: Mapping[str, Any] | None, jwks_url: str | None) -> Any:
    try:
        if jwks is not None:
            for found in jwt.PyJWKSet.from_dict(dict(jwks)).keys:
                if found.key_id == kid:
                    return found.key
            raise ReceiptRefused(f"receipt signed by an unknown key {kid!r}")
        if jwks_url is not None:
            return _client(jwks_url).get_signing_key(kid).key
    except jwt.PyJWKClientError as exc:
        raise ReceiptRefused(f"receipt key {kid!r}: {exc}") from exc
    except jwt.PyJWKSetError as exc:
        raise ReceiptRefused(f"unusable receipt keys: {exc}") from exc
    raise ReceiptsOff("no receipt keys to verify against")


def verify(
    receipt: str,
    *,
    jwks: Mapping[str, Any] | None = None,
    jwks_url: str | None = None,
    issuer: str | None = None,
    expected: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The claims of ``receipt`` once its signature verifies against ``jwks`` (a JWK
    Set) or the set at ``jwks_url``, and each ``expected`` claim matches (the key
    ``action_sha256`` must be one of the receipt's ``actions_sha256``); otherwise
    ReceiptRefused says why."""
    try:
        header = jwt.get_unverified_header(receipt)
    except jwt.InvalidTokenError as exc:
        raise ReceiptRefused(f"not a receipt: {exc}") from exc
    if header.get("typ") != TYP or header.get("alg") != ALG:
        raise ReceiptRefused(f"not a receipt: typ {header.get('typ')!r}, alg {header.get('alg')!r}")
    key = _key(str(header.get("kid") or ""), jwks, jwks_url)
    try:
        claims: dict[str, Any] = jwt.decode(
            receipt,
            key,
            algorithms=[ALG],
            issuer=issuer,
            leeway=LEEWAY_S,
            options={"require": ["iss", "sub", "iat"], "verify_aud": False},
        )
    except jwt.InvalidTokenError as exc:
        raise ReceiptRefused(f"receipt does not verify: {exc}") from exc
    for name, want in (expected or {}).items():
        if name == "action_sha256":
            if want not in (claims.get("actions_sha256") or []):
                raise ReceiptRefused("receipt approves other arguments")
        elif claims.get(name) != want:
            raise ReceiptRefused(f"receipt is for another {name}")
    return claims


def receipts_in(config: Mapping[str, Any] | None) -> tuple[dict[str, str], dict[str, Any] | None]:
    """The receipts a run was resumed with, and the broker's keys (None: receipts off)."""
    configurable = (config or {}).get("configurable") or {}
    return dict(configurable.get(CONFIG_RECEIPTS) or {}), configurable.get(CONFIG_JWKS)


def receipt_for(
    config: Mapping[str, Any] | None,
    name: str,
    args: Mapping[str, Any],
    *,
    jwks: Mapping[str, Any] | None = None,
    jwks_url: str | None = None,
) -> dict[str, Any]:
    """The verified claims of the receipt in ``config`` that approves the tool call
    ``name(args)`` on the run's thread. The keys are ``jwks`` or ``jwks_url`` when given,
    else the ones in ``config``. ReceiptsOff when there are none; ReceiptRefused when no
    receipt approves exactly this call."""
    found, configured = receipts_in(config)
    if jwks is None and jwks_url is None:
        if configured is None:
            raise ReceiptsOff("the broker signs no receipts (no receipt keys in the config)")
        jwks = configured
    expected: dict[str, Any] = {"action_sha256": action_sha256(name, args)}
    thread_id = ((config or {}).get("configurable") or {}).get("thread_id")
    if thread_id:
        expected["thread_id"] = thread_id
    reasons: list[str] = []
    for receipt in found.values():
        try:
            return verify(receipt, jwks=jwks, jwks_url=jwks_url, expected=expected)
        except ReceiptsOff:
            raise
        except ReceiptRefused as exc:
            reasons.append(str(exc))
    why = "; ".join(reasons) if reasons else "no receipt came with the answer"
    raise ReceiptRefused(f"no valid receipt approves {name} with these arguments ({why})")
