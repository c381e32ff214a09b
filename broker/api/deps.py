"""FastAPI dependencies, as ``Annotated`` aliases.

Every one is ``async def``: FastAPI runs a plain ``def`` dependency in its thread pool,
a thread hop per dependency per request for what is an attribute read.
"""

from __future__ import annotations

from typing import Annotated, Any

from arq.connections import ArqRedis
from fastapi import Depends, Request

from broker.api.events import EventHub
from broker.core import auth, errors
from broker.core.settings import Settings
from broker.core.store import Store


async def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def get_queue(request: Request) -> ArqRedis:
    pool: ArqRedis = request.app.state.queue
    return pool


async def get_registry(request: Request) -> dict[str, Any]:
    registry: dict[str, Any] = request.app.state.registry
    return registry


async def get_hub(request: Request) -> EventHub:
    hub: EventHub = request.app.state.hub
    return hub


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


StoreDep = Annotated[Store, Depends(get_store)]
QueueDep = Annotated[ArqRedis, Depends(get_queue)]
RegistryDep = Annotated[dict[str, Any], Depends(get_registry)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
HubDep = Annotated[EventHub, Depends(get_hub)]


# The auth gate checks keys; broker/api/openapi.py declares them in the document.
async def get_principal(request: Request) -> auth.Principal:
    principal: auth.Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        raise errors.Unauthorized("send an API key: `Authorization: Bearer <key>`")
    return principal


def scoped(scope: str) -> Any:
    """A dependency: the request's principal, which must hold ``scope`` (else 403)."""

    async def check(principal: Annotated[auth.Principal, Depends(get_principal)]) -> auth.Principal:
        if not principal.allows(scope):
            raise errors.Forbidden(
                f"the API key {principal.actor!r} lacks the {scope!r} scope", scope=scope
            )
        return principal

    return check


Principal = Annotated[auth.Principal, Depends(get_principal)]
"""Any valid key (routes that check scopes themselves, such as answering)."""
Reader = Annotated[auth.Principal, Depends(scoped(auth.READ))]
RunWriter = Annotated[auth.Principal, Depends(scoped(auth.RUNS_WRITE))]
Admin = Annotated[auth.Principal, Depends(scoped(auth.ADMIN))]
