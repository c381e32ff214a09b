"""Managing webhook subscriptions (``/admin/webhooks``; the key needs the admin scope),
mixed into ``Client`` and ``AsyncClient``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from interrupt_broker_client._calls import Call, _body, _params, _seg
from interrupt_broker_client.errors import from_response
from interrupt_broker_client.models import Delivery, NewWebhook, Webhook

if TYPE_CHECKING:
    import httpx


def create_webhook(url: str, options: dict[str, Any]) -> Call:
    return Call("POST", "/admin/webhooks", json=_body(url=url, **options))


def list_webhooks() -> Call:
    return Call("GET", "/admin/webhooks", retry=True)


def get_webhook(sid: str) -> Call:
    return Call("GET", f"/admin/webhooks/{_seg(sid)}", retry=True)


def update_webhook(sid: str, changes: dict[str, Any]) -> Call:
    return Call("PATCH", f"/admin/webhooks/{_seg(sid)}", json=changes)


def delete_webhook(sid: str) -> Call:
    return Call("DELETE", f"/admin/webhooks/{_seg(sid)}")


def deliveries(sid: str, limit: int | None) -> Call:
    path = f"/admin/webhooks/{_seg(sid)}/deliveries"
    return Call("GET", path, params=_params(limit=limit), retry=True)


class WebhookAdmin:
    """Webhook subscriptions, blocking. ``options`` of a new one: ``events``,
    ``agents``, ``types``, ``secret``, ``enabled``, ``description`` (absent: the
    broker's defaults); a change names the fields it changes."""

    if TYPE_CHECKING:

        def _json(self, call: Call) -> Any: ...
        def _send(self, call: Call) -> httpx.Response: ...

    def create_webhook(self, url: str, **options: Any) -> NewWebhook:
        """Subscribes ``url``; the answer is the only one that shows the secret."""
        made: NewWebhook = self._json(create_webhook(url, options))
        return made

    def list_webhooks(self) -> list[Webhook]:
        items: list[Webhook] = self._json(list_webhooks())["items"]
        return items

    def get_webhook(self, sid: str) -> Webhook:
        found: Webhook = self._json(get_webhook(sid))
        return found

    def update_webhook(self, sid: str, **changes: Any) -> Webhook:
        changed: Webhook = self._json(update_webhook(sid, changes))
        return changed

    def delete_webhook(self, sid: str) -> None:
        response = self._send(delete_webhook(sid))
        if response.status_code >= 400:
            raise from_response(response)

    def webhook_deliveries(self, sid: str, *, limit: int | None = None) -> list[Delivery]:
        items: list[Delivery] = self._json(deliveries(sid, limit))["items"]
        return items


class AsyncWebhookAdmin:
    """Webhook subscriptions, on asyncio: the methods of ``WebhookAdmin``, awaited."""

    if TYPE_CHECKING:

        async def _json(self, call: Call) -> Any: ...
        async def _send(self, call: Call) -> httpx.Response: ...

    async def create_webhook(self, url: str, **options: Any) -> NewWebhook:
        made: NewWebhook = await self._json(create_webhook(url, options))
        return made

    async def list_webhooks(self) -> list[Webhook]:
        items: list[Webhook] = (await self._json(list_webhooks()))["items"]
        return items

    async def get_webhook(self, sid: str) -> Webhook:
        found: Webhook = await self._json(get_webhook(sid))
        return found

    async def update_webhook(self, sid: str, **changes: Any) -> Webhook:
        changed: Webhook = await self._json(update_webhook(sid, changes))
        return changed

    async def delete_webhook(self, sid: str) -> None:
        response = await self._send(delete_webhook(sid))
        if response.status_code >= 400:
            raise from_response(response)

    async def webhook_deliveries(self, sid: str, *, limit: int | None = None) -> list[Delivery]:
        items: list[Delivery] = (await self._json(deliveries(sid, limit)))["items"]
        return items
