"""People: a bearer token that is a JWT from the configured OpenID provider.

``Verifier.principal`` checks a token and returns the person it names, with the scopes
``BROKER_OIDC_SCOPES`` gives people and those ``BROKER_OIDC_GROUP_SCOPES`` gives their
groups. What is checked: the signature, with a key the
provider publishes (``broker/core/oidc_keys.py``) and an algorithm from ``ALGORITHMS``
(asymmetric only: never ``none``, never HMAC, whose secret would be the public key
anyone can read); ``iss`` equal to the configured issuer; ``aud`` naming the configured
audience; ``exp`` (required), ``nbf`` and ``iat`` within ``BROKER_OIDC_LEEWAY_S`` of the
clock; and a ``sub``. Any failure is ``InvalidToken``, whose message says which check
failed; a provider that cannot be reached for its keys is ``ProviderUnavailable``.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import jwt

from broker.core import auth
from broker.core.oidc_keys import ALGORITHMS, Keys, ProviderUnavailable, UnknownKey
from broker.core.settings import Settings

__all__ = [
    "ALGORITHMS",
    "DEFAULT_SCOPES",
    "InvalidToken",
    "ProviderUnavailable",
    "Verifier",
    "looks_like_jwt",
    "person",
]

log = logging.getLogger("broker.oidc")

DEFAULT_SCOPES = (auth.READ, auth.RESOLVE)
MAX_GROUPS = 200
"""The most of a token's groups a person is matched by (the first ones listed): each is
a name compared with assignees and checked again inside the resolve step."""
# three base64url segments; an unsigned token ("alg": "none") has an empty third one
_JWT = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")


class InvalidToken(Exception):
    """The token is not one this broker accepts; the message says why."""


def looks_like_jwt(token: str) -> bool:
    return len(token) < 16_384 and _JWT.match(token) is not None


def person(
    claims: dict[str, Any], groups_claim: str = "groups", *, trust_unverified_email: bool = False
) -> auth.Person:
    """The person a verified token's claims name. ``email`` is kept only when the token
    says it is verified (``email_verified: true``), or ``trust_unverified_email`` says
    the provider issues no other: ``user:<email>`` designates an assignee, and some
    providers put an email the user may change in tokens without ``email_verified``.
    Groups are a list of strings or one space-separated string, the first
    ``MAX_GROUPS`` of them used."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise InvalidToken("the token names no subject (sub)")
    email = claims.get("email")
    verified = claims.get("email_verified") is True or trust_unverified_email
    if not isinstance(email, str) or not email or not verified:
        email = None
    name = claims.get("name")
    groups = list(dict.fromkeys(_groups(_claim(claims, groups_claim))))
    if len(groups) > MAX_GROUPS:
        log.warning(
            "the token of %r lists %d groups; the first %d are used for assignment",
            sub,
            len(groups),
            MAX_GROUPS,
        )
        groups = groups[:MAX_GROUPS]
    return auth.Person(
        subject=sub,
        issuer=str(claims.get("iss", "")),
        email=email,
        name=name if isinstance(name, str) and name else None,
        groups=frozenset(groups),
    )


def _claim(claims: dict[str, Any], path: str) -> Any:
    if path in claims:
        return claims[path]
    node: Any = claims
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _groups(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return (g for g in value if isinstance(g, str) and g)
    return ()


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, name: str, *, dev: bool) -> None:
    """A provider URL must be https, or http only on loopback or under ``broker dev``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name} must be an https:// URL, not {url!r}")
    if parts.scheme == "http" and not (dev or is_loopback(url)):
        raise ValueError(
            f"{name} must be https ({url!r}): keys and tokens from a provider reached "
            "over plain http could be forged on the way; http is accepted only on loopback"
        )


def scopes(settings: Settings) -> frozenset[str]:
    """The scopes every person gets (``BROKER_OIDC_SCOPES``). Not admin, and not the
    scopes that decide who answers (on_behalf, assign): everyone the provider issues a
    token for this audience would hold them, and assignment would mean nothing."""
    configured = settings.oidc_scopes
    if configured is None:
        return frozenset(DEFAULT_SCOPES)
    found = _known(configured, "BROKER_OIDC_SCOPES")
    if auth.ADMIN in found:
        raise ValueError(
            "BROKER_OIDC_SCOPES may not give people the admin scope: anyone the provider "
            "issues a token for this audience would administer the broker; give admin "
            "to an API key instead"
        )
    strong = sorted(found & {auth.ON_BEHALF, auth.ASSIGN})
    if strong:
        raise ValueError(
            f"BROKER_OIDC_SCOPES may not give every person {strong}: with them anyone the "
            "provider signs in could answer, or take, any assigned interrupt; give them to "
            'a group instead (BROKER_OIDC_GROUP_SCOPES=\'{"leads": ["interrupts:assign"]}\')'
        )
    return found


def group_scopes(settings: Settings) -> dict[str, frozenset[str]]:
    """The scopes a group's members get besides ``scopes`` (``BROKER_OIDC_GROUP_SCOPES``);
    admin is kept for API keys."""
    out: dict[str, frozenset[str]] = {}
    for group, listed in (settings.oidc_group_scopes or {}).items():
        where = f"BROKER_OIDC_GROUP_SCOPES[{group!r}]"
        if not group:
            raise ValueError("BROKER_OIDC_GROUP_SCOPES names an empty group")
        if not isinstance(listed, list):
            raise ValueError(f"{where} must be a list of scopes")
        found = _known(listed, where)
        if auth.ADMIN in found:
            raise ValueError(
                f"{where} may not give the admin scope: whoever manages the group at the "
                "provider would administer the broker; give admin to an API key instead"
            )
        out[group] = found
    return out


def _known(listed: list[Any], where: str) -> frozenset[str]:
    bad = [s for s in listed if s not in auth.SCOPES]
    if bad:
        raise ValueError(f"{where} has unknown scopes {bad}; known: {auth.SCOPES}")
    return frozenset(listed)


class Verifier:
    """Checks people's tokens against one provider; built once per process."""

    def __init__(self, settings: Settings) -> None:
        issuer, audience = settings.oidc_issuer, settings.oidc_audience
        if not issuer:
            raise ValueError("BROKER_OIDC_ISSUER is not set")
        check_url(issuer, "BROKER_OIDC_ISSUER", dev=settings.dev)
        if not audience:
            raise ValueError(
                "BROKER_OIDC_AUDIENCE is required with BROKER_OIDC_ISSUER: the audience "
                "the provider puts in access tokens meant for the broker (their aud)"
            )
        if settings.oidc_jwks_url:
            check_url(settings.oidc_jwks_url, "BROKER_OIDC_JWKS_URL", dev=settings.dev)
        self.issuer = issuer
        self.audience = audience
        self.client_id = settings.oidc_client_id
        self.dashboard_scope = settings.oidc_dashboard_scope
        self.groups_claim = settings.oidc_groups_claim
        self.trust_unverified_email = settings.oidc_trust_unverified_email
        self.leeway = settings.oidc_leeway_s
        self.scopes = scopes(settings)
        self.group_scopes = group_scopes(settings)
        self.keys = Keys(
            issuer,
            settings.oidc_jwks_url,
            timeout=settings.oidc_timeout_s,
            check=lambda url: check_url(url, "the provider's jwks_uri", dev=settings.dev),
        )

    def public_config(self) -> dict[str, Any]:
        """What the dashboard needs to sign people in (``GET /auth/config``)."""
        return {
            "issuer": self.issuer,
            "client_id": self.client_id,
            "audience": self.audience,
            "scope": self.dashboard_scope,
        }

    async def principal(self, token: str) -> auth.Principal:
        """The principal of a person's token; InvalidToken or ProviderUnavailable if not."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"the bearer token is not a well-formed JWT: {exc}") from exc
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise InvalidToken(
                f"the token's algorithm {alg!r} is not allowed; allowed: {', '.join(ALGORITHMS)}"
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("the token names no signing key (kid header)")
        try:
            key = await self.keys.get(kid, alg)
        except UnknownKey as exc:
            raise InvalidToken(str(exc)) from exc
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud", "sub"], "strict_aud": False},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(self._reason(exc)) from exc
        who = person(claims, self.groups_claim, trust_unverified_email=self.trust_unverified_email)
        granted = self.scopes.union(
            *(self.group_scopes[g] for g in who.groups if g in self.group_scopes)
        )
        return auth.Principal(key_id=None, scopes=granted, person=who)

    def _reason(self, exc: jwt.PyJWTError) -> str:
        if isinstance(exc, jwt.ExpiredSignatureError):
            return "the token has expired; sign in again"
        if isinstance(exc, jwt.InvalidAudienceError):
            return f"the token is not meant for this broker: its audience is not {self.audience!r}"
        if isinstance(exc, jwt.InvalidIssuerError):
            return f"the token was not issued by {self.issuer!r}"
        if isinstance(exc, jwt.ImmatureSignatureError):
            return "the token is not valid yet (its nbf or iat is in the future)"
        if isinstance(exc, jwt.InvalidSignatureError):
            return "the token's signature does not verify"
        if isinstance(exc, jwt.InvalidAlgorithmError):
            return f"the token's algorithm is not allowed: {exc}"
        if isinstance(exc, jwt.MissingRequiredClaimError):
            return f"the token lacks the {exc.claim!r} claim"
        if isinstance(exc, jwt.DecodeError):
            return f"the bearer token is not a well-formed JWT: {exc}"
        return f"the token is not valid: {exc}"
