"""The broker's service routes, mixed into ``Client`` and ``AsyncClient``: liveness,
readiness, Prometheus metrics, how people sign in, and the receipt keys. All but
``/metrics`` are open: they answer without an API key.

Readiness is an answer, not an error: ``ready()`` returns the broker's report whether it
is ready (``200``) or not (``503`` with ``status: "not_ready"`` and the failing check),
so a caller reads ``report["status"]``. Any other error (a ``503`` without a report, as
a stopping API process answers) raises, as every other method does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from interrupt_broker_client._calls import Call
from interrupt_broker_client.errors import from_response
from interrupt_broker_client.models import AuthConfig, Health, JwkSet, Readiness

if TYPE_CHECKING:
    import httpx

HEALTH = Call("GET", "/healthz", retry=True)
# not sent again on a 503: "not ready" is the answer itself
READY = Call("GET", "/readyz")
METRICS = Call("GET", "/metrics", retry=True)
AUTH_CONFIG = Call("GET", "/auth/config", retry=True)
JWKS = Call("GET", "/.well-known/jwks.json", retry=True)


def readiness(response: httpx.Response) -> Readiness:
    """The report of ``/readyz``, ready or not; the error of anything else."""
    if response.status_code in (200, 503):
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("status") in ("ready", "not_ready"):
            report: Readiness = response.json()
            return report
    raise from_response(response)


def text(response: httpx.Response) -> str:
    if response.status_code >= 400:
        raise from_response(response)
    return response.text


class ServiceRoutes:
    """Liveness, readiness, metrics, sign-in configuration and receipt keys, blocking."""

    if TYPE_CHECKING:

        def _json(self, call: Call) -> Any: ...
        def _send(self, call: Call) -> httpx.Response: ...

    def health(self) -> Health:
        """``GET /healthz``: ``{"status": "ok"}`` while the API process answers."""
        got: Health = self._json(HEALTH)
        return got

    def ready(self) -> Readiness:
        """``GET /readyz``: whether Redis answers and a worker is alive. Not ready is a
        report too (``status == "not_ready"``, the broker's ``503``), never an error."""
        return readiness(self._send(READY))

    def metrics(self) -> str:
        """``GET /metrics``: the Prometheus text; needs ``interrupts:read`` on a key not
        limited to agents (the totals cover every agent)."""
        return text(self._send(METRICS))

    def auth_config(self) -> AuthConfig:
        """``GET /auth/config``: the OpenID provider people sign in with (None if none)."""
        got: AuthConfig = self._json(AUTH_CONFIG)
        return got

    def jwks(self) -> JwkSet:
        """``GET /.well-known/jwks.json``: the public keys decision receipts verify
        against; ``{"keys": []}`` while receipts are off."""
        got: JwkSet = self._json(JWKS)
        return got


class AsyncServiceRoutes:
    """The methods of ``ServiceRoutes``, awaited."""

    if TYPE_CHECKING:

        async def _json(self, call: Call) -> Any: ...
        async def _send(self, call: Call) -> httpx.Response: ...

    async def health(self) -> Health:
        got: Health = await self._json(HEALTH)
        return got

    async def ready(self) -> Readiness:
        return readiness(await self._send(READY))

    async def metrics(self) -> str:
        return text(await self._send(METRICS))

    async def auth_config(self) -> AuthConfig:
        got: AuthConfig = await self._json(AUTH_CONFIG)
        return got

    async def jwks(self) -> JwkSet:
        got: JwkSet = await self._json(JWKS)
        return got
