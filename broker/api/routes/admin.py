"""Administration: webhook subscriptions and their delivery logs (scope ``admin``)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from broker.api.body import read_json
from broker.api.deps import Admin, SettingsDep, StoreDep
from broker.api.openapi import BODY, QUERY, REDIS, SCOPE, error_responses, json_body
from broker.core import errors, netguard, signing, webhooks
from broker.core.codec import iso, now_ms
from broker.core.errors import validation_message
from broker.core.settings import Settings
from broker.core.store import Store

# http(s), a host, no credentials, checked (with the host resolving to a public address)
# by netguard: 422 unsafe_webhook_url
URL: dict[str, Any] = {"pattern": r"^https?://[^\s/?#@]+([/?#]\S*)?$"}
router = APIRouter(prefix="/admin", tags=["admin"], responses=error_responses(*SCOPE, REDIS))
NOT_FOUND = error_responses(errors.WebhookNotFound)
MANAGED = error_responses(errors.WebhookNotFound, errors.WebhookReadOnly)


class NewWebhook(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    url: str = Field(min_length=1, max_length=2000, json_schema_extra=URL)
    events: list[webhooks.EventName] = Field(default_factory=lambda: list(webhooks.EVENTS))
    agents: list[str] | None = None
    types: list[str] | None = None
    secret: str | None = Field(default=None, description="whsec_…; made for you when omitted")
    description: str | None = Field(default=None, max_length=500)
    enabled: bool = True


class WebhookChange(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    url: str | None = Field(default=None, min_length=1, max_length=2000, json_schema_extra=URL)
    events: list[webhooks.EventName] | None = None
    agents: list[str] | None = None
    types: list[str] | None = None
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None


def _config(request: Request) -> dict[str, webhooks.Subscription]:
    config: dict[str, webhooks.Subscription] = request.app.state.webhook_config
    return config


async def _check_url(url: str, settings: Settings) -> None:
    try:
        await netguard.resolve(url, allow_private=settings.webhook_allow_private)
    except netguard.UnsafeAddress as exc:
        raise errors.UnsafeWebhookUrl(str(exc)) from exc


async def _managed(store: Store, request: Request, sid: str) -> webhooks.Subscription:
    sub = await webhooks.find(store, _config(request), sid)
    if sub is None:
        raise errors.WebhookNotFound(f"no webhook subscription {sid!r}")
    if sub.source == "config":
        raise errors.WebhookReadOnly(
            f"webhook {sid!r} comes from the configuration; change BROKER_WEBHOOKS instead"
        )
    return sub


@router.post(
    "/webhooks",
    status_code=201,
    responses=error_responses(*BODY, errors.UnsafeWebhookUrl),
    openapi_extra=json_body(NewWebhook),
)
async def create_webhook(
    request: Request, store: StoreDep, settings: SettingsDep, _: Admin
) -> dict[str, Any]:
    """Subscribes a URL to events; the response is the only one that shows the secret."""
    body = await read_json(request, NewWebhook, settings.max_input_bytes)
    await _check_url(body.url, settings)
    secret = body.secret or signing.new_secret()
    try:
        signing.check_secret(secret, dev=settings.dev)
    except signing.WebhookSecretError as exc:
        raise errors.InvalidRequest(str(exc)) from exc
    sub = webhooks.Subscription(
        id=f"wh_{uuid.uuid4().hex[:16]}",
        url=body.url,
        secret=secret,
        events=body.events,
        agents=body.agents,
        types=body.types,
        enabled=body.enabled,
        description=body.description,
        created_at=iso(now_ms()),
    )
    await webhooks.save(store, sub)
    return {**sub.public(), "secret": secret}


@router.get("/webhooks")
async def list_webhooks(request: Request, store: StoreDep, _: Admin) -> dict[str, Any]:
    """Every subscription, configured and managed (without secrets)."""
    return {"items": [s.public() for s in await webhooks.every(store, _config(request))]}


@router.get("/webhooks/{sid}", responses=NOT_FOUND)
async def get_webhook(sid: str, request: Request, store: StoreDep, _: Admin) -> dict[str, Any]:
    """One subscription (without its secret)."""
    sub = await webhooks.find(store, _config(request), sid)
    if sub is None:
        raise errors.WebhookNotFound(f"no webhook subscription {sid!r}")
    return sub.public()


@router.patch(
    "/webhooks/{sid}",
    responses={**MANAGED, **error_responses(*BODY, errors.UnsafeWebhookUrl)},
    openapi_extra=json_body(WebhookChange),
)
async def change_webhook(
    sid: str, request: Request, store: StoreDep, settings: SettingsDep, _: Admin
) -> dict[str, Any]:
    """Changes a managed subscription (configured ones are read-only)."""
    sub = await _managed(store, request, sid)
    change = await read_json(request, WebhookChange, settings.max_input_bytes)
    fields = change.model_dump(exclude_unset=True)
    try:
        # validated as a whole, so a change (``"events": null``) never stores a
        # subscription that every later read would fail on
        updated = webhooks.Subscription.model_validate({**sub.model_dump(), **fields})
    except ValidationError as exc:
        raise errors.InvalidRequest(validation_message(exc)) from exc
    if "url" in fields:
        await _check_url(updated.url, settings)
    await webhooks.save(store, updated)
    return updated.public()


@router.delete("/webhooks/{sid}", status_code=204, responses=MANAGED)
async def delete_webhook(sid: str, request: Request, store: StoreDep, _: Admin) -> Response:
    """Removes a managed subscription and its delivery log."""
    await _managed(store, request, sid)
    await webhooks.delete(store, sid)
    return Response(status_code=204)


@router.get("/webhooks/{sid}/deliveries", responses={**NOT_FOUND, **error_responses(*QUERY)})
async def list_deliveries(
    sid: str,
    request: Request,
    store: StoreDep,
    _: Admin,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The subscription's delivery attempts, newest first."""
    if await webhooks.find(store, _config(request), sid) is None:
        raise errors.WebhookNotFound(f"no webhook subscription {sid!r}")
    return {"items": await webhooks.deliveries(store, sid, limit)}
