"""FastAPI dependencies, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated, Any

from arq.connections import ArqRedis
from fastapi import Depends, Request

from broker.events import EventHub
from broker.settings import Settings
from broker.store import Store


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def get_queue(request: Request) -> ArqRedis:
    pool: ArqRedis = request.app.state.queue
    return pool


def get_registry(request: Request) -> dict[str, Any]:
    registry: dict[str, Any] = request.app.state.registry
    return registry


def get_hub(request: Request) -> EventHub:
    hub: EventHub = request.app.state.hub
    return hub


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


StoreDep = Annotated[Store, Depends(get_store)]
QueueDep = Annotated[ArqRedis, Depends(get_queue)]
RegistryDep = Annotated[dict[str, Any], Depends(get_registry)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
HubDep = Annotated[EventHub, Depends(get_hub)]
