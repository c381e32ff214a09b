"""The provider's signing keys, for ``broker/core/oidc.py``.

Where they are comes from ``BROKER_OIDC_JWKS_URL``, or else the provider's discovery
document (``<issuer>/.well-known/openid-configuration``), read once, on the first token,
with a bounded timeout; a failed read is retried at most every ``RETRY_S``. The key set
is fetched by PyJWT's ``PyJWKClient``, which is blocking: it runs in a thread, and only
when a key is not in this module's cache, so the event loop never waits on the network
for a key it has. A token naming an unknown key (the provider rotated its keys) makes
the client fetch the set again, at most once per ``COOLDOWN_S``; a cached key is
trusted for ``LIFESPAN_S``, then looked up again, and kept for up to ``STALE_S`` more
only while the provider cannot be reached. A failed fetch of the set (unreachable, or a
set with no usable key) is not retried for ``RETRY_S``: meanwhile known keys are served
as they are, without waiting on the lock or the network, and a token naming another key
is refused at once as ProviderUnavailable (503).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
from jwt import (
    PyJWK,
    PyJWKClient,
    PyJWKClientConnectionError,
    PyJWKClientError,
    PyJWKSetError,
    PyJWTError,
)

log = logging.getLogger("broker.oidc")

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
"""Asymmetric algorithms only: ``none`` and HMAC (HS*) are never accepted."""
_KEY_TYPE = {"R": "RSA", "P": "RSA", "E": "EC"}
_CURVE = {"ES256": "P-256", "ES384": "P-384"}
LIFESPAN_S = 300.0
COOLDOWN_S = 10.0
STALE_S = 3600.0
RETRY_S = 10.0


class ProviderUnavailable(Exception):
    """The provider's discovery document or key set could not be read."""


class UnknownKey(Exception):
    """The provider publishes no key that fits the token (kid and algorithm)."""


class _NotPublished(UnknownKey):
    """No key with the token's kid (unlike a known key of another algorithm)."""


class Keys:
    def __init__(
        self,
        issuer: str,
        jwks_url: str | None,
        *,
        timeout: float,
        check: Callable[[str], None],
    ) -> None:
        self.issuer = issuer
        self.timeout = timeout
        self._check = check
        self._client = self._new_client(jwks_url) if jwks_url else None
        self._lock = asyncio.Lock()
        # one lookup at a time: a flood of tokens naming made-up keys holds one thread of
        # the loop's executor (which also resolves host names), never all of them
        self._fetching = asyncio.Lock()
        self._retry_at = 0.0
        self._failure = ""
        # after a failed fetch of the key set: when the provider may be asked again
        self._keys_retry_at = 0.0
        self._keys_failure = ""
        self._cache: dict[tuple[str, str], tuple[PyJWK, float]] = {}
        self._unknown: dict[str, float] = {}

    def _new_client(self, url: str) -> PyJWKClient:
        return PyJWKClient(
            url, lifespan=LIFESPAN_S, timeout=self.timeout, cooldown_duration=COOLDOWN_S
        )

    async def get(self, kid: str, alg: str) -> PyJWK:
        """The provider's key ``kid``, bound to ``alg``."""
        cached = self._fresh(kid, alg)
        if cached is not None:
            return cached
        held = self._while_unreachable(kid, alg)
        if held is not None:
            return held
        client = self._client or await self._discover()
        # shielded: a request cancelled while the key set is fetched leaves the lookup
        # (and the lock it holds) running until its thread ends, so there is never more
        # than one thread fetching
        lookup = asyncio.ensure_future(self._lookup(client, kid, alg))
        lookup.add_done_callback(_retrieve)
        return await asyncio.shield(lookup)

    async def _lookup(self, client: PyJWKClient, kid: str, alg: str) -> PyJWK:
        async with self._fetching:
            cached = self._fresh(kid, alg)  # found while this one waited
            if cached is not None:
                return cached
            held = self._while_unreachable(kid, alg)  # failed while this one waited
            if held is not None:
                return held
            if time.monotonic() - self._unknown.get(kid, -COOLDOWN_S) < COOLDOWN_S:
                raise UnknownKey(_unknown(kid))
            try:
                key = await asyncio.to_thread(_fetch, client, kid, alg)
            except _NotPublished:
                if len(self._unknown) > 1024:
                    self._unknown.clear()
                self._unknown[kid] = time.monotonic()
                raise
            except ProviderUnavailable as exc:
                self._keys_failure = str(exc)
                self._keys_retry_at = time.monotonic() + RETRY_S
                log.warning("%s; the keys known before serve until %s s from now", exc, RETRY_S)
                stale = self._stale(kid, alg)
                if stale is not None:
                    return stale
                raise
            if len(self._cache) > 64:
                self._cache.clear()  # keys of a past rotation
            self._cache[(kid, alg)] = (key, time.monotonic())
            self._unknown.pop(kid, None)
            self._keys_retry_at = 0.0
            return key

    def _while_unreachable(self, kid: str, alg: str) -> PyJWK | None:
        """Within ``RETRY_S`` of a failed fetch of the key set: the key known before
        (if not too old), without asking the provider again; else ProviderUnavailable.
        None outside that time: the provider may be asked."""
        if time.monotonic() >= self._keys_retry_at:
            return None
        stale = self._stale(kid, alg)
        if stale is None:
            raise ProviderUnavailable(self._keys_failure)
        return stale

    def _stale(self, kid: str, alg: str) -> PyJWK | None:
        cached = self._cache.get((kid, alg))
        if cached is not None and time.monotonic() - cached[1] < LIFESPAN_S + STALE_S:
            return cached[0]
        return None

    def _fresh(self, kid: str, alg: str) -> PyJWK | None:
        cached = self._cache.get((kid, alg))
        if cached is not None and time.monotonic() - cached[1] < LIFESPAN_S:
            return cached[0]
        return None

    async def _discover(self) -> PyJWKClient:
        async with self._lock:
            if self._client is not None:
                return self._client
            if time.monotonic() < self._retry_at:
                raise ProviderUnavailable(self._failure)
            try:
                url = await self._jwks_uri()
            except ProviderUnavailable as exc:
                self._failure = str(exc)
                self._retry_at = time.monotonic() + RETRY_S
                log.error("%s", exc)
                raise
            self._client = self._new_client(url)
            return self._client

    async def _jwks_uri(self) -> str:
        where = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as http:
                r = await http.get(where, headers={"Accept": "application/json"})
            r.raise_for_status()
            doc: Any = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderUnavailable(
                f"the identity provider's discovery document {where} cannot be read: {exc}"
            ) from exc
        if not isinstance(doc, dict) or doc.get("issuer") != self.issuer:
            # OpenID Connect Discovery 1.0, 4.3: the issuer must be the one asked
            got = doc.get("issuer") if isinstance(doc, dict) else None
            raise ProviderUnavailable(
                f"the discovery document at {where} names issuer {got!r}, not "
                f"BROKER_OIDC_ISSUER {self.issuer!r}; set it to the exact issuer"
            )
        url = doc.get("jwks_uri")
        if not isinstance(url, str):
            raise ProviderUnavailable(f"the discovery document at {where} has no jwks_uri")
        try:
            self._check(url)
        except ValueError as exc:
            raise ProviderUnavailable(str(exc)) from exc
        return url


def _retrieve(task: asyncio.Future[Any]) -> None:
    """Marks a lookup's failure as seen, for when its request was cancelled."""
    if not task.cancelled():
        task.exception()


def _fetch(client: PyJWKClient, kid: str, alg: str) -> PyJWK:
    """Blocking: the key ``kid`` from the client (which fetches the set when it must)."""
    try:
        found = client.get_signing_key(kid)
    except (PyJWKClientConnectionError, PyJWKSetError, ValueError) as exc:
        # unreachable, or a set with no usable key (a provider between two states, such
        # as {"keys": []}), or not JSON: nothing to judge a token by
        raise ProviderUnavailable(f"the identity provider's keys cannot be read: {exc}") from exc
    except PyJWKClientError as exc:
        raise _NotPublished(_unknown(kid)) from exc
    return _bound(found, kid, alg)


def _unknown(kid: str) -> str:
    return f"the token is signed with key {kid!r}, which the provider does not publish"


def _bound(found: PyJWK, kid: str, alg: str) -> PyJWK:
    """The key for verifying ``alg`` tokens: its own ``alg`` if it names one, else one
    its type (and curve) fits, so a key is never used with another family's algorithm."""
    data: dict[str, Any] = dict(found._jwk_data)
    named = data.get("alg")
    fits = (
        named == alg
        if named
        else (
            data.get("kty") == ("OKP" if alg == "EdDSA" else _KEY_TYPE.get(alg[0]))
            and data.get("crv") == _CURVE.get(alg, data.get("crv"))
        )
    )
    if not fits:
        raise UnknownKey(f"the provider's key {kid!r} is not for algorithm {alg}")
    if found.algorithm_name == alg:
        return found
    try:
        return PyJWK(data, algorithm=alg)
    except PyJWTError as exc:
        raise UnknownKey(f"the provider's key {kid!r} cannot verify {alg}: {exc}") from exc
