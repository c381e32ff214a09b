"""Webhook subscriptions, which events they match, and the payload they are sent.

Subscriptions come from the configuration (``BROKER_WEBHOOKS`` or
``BROKER_WEBHOOKS_FILE``, read-only over the API) and from ``/admin/webhooks`` (kept in
Redis, with a version key that changes in the same transaction, so dispatchers read the
subscriptions only when they change). Deliveries are signed per Standard Webhooks
(broker/signing.py) and made by worker jobs (worker/deliveries.py).
"""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from broker.core import errors, links, signing
from broker.core.codec import dumps, iso, loads, now_ms
from broker.core.errors import validation_message
from broker.core.ids import is_id
from broker.core.records import InterruptStatus
from broker.core.settings import Settings, json_list
from broker.core.store import Store

EventName = Literal[
    "interrupt.created",
    "interrupt.accepted",
    "interrupt.withdrawn",
    "interrupt.resolved",
    "interrupt.expired",
    "interrupt.assigned",
    "interrupt.reminded",
    "run.succeeded",
    "run.failed",
    "run.cancelled",
    "run.completed",
]
RUN_DONE: tuple[EventName, ...] = ("run.succeeded", "run.failed", "run.cancelled")
EVENTS: tuple[EventName, ...] = (
    "interrupt.created",
    "interrupt.accepted",
    "interrupt.withdrawn",
    "interrupt.resolved",
    "interrupt.expired",
    "interrupt.assigned",
    "interrupt.reminded",
    *RUN_DONE,
)


class WebhookConfigError(ValueError):
    """The configured subscriptions are unusable; the message says which and why."""


class Subscription(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._\-]+$")
    url: str = Field(min_length=1, max_length=2000)
    secret: str
    events: list[EventName] = Field(default_factory=lambda: list(EVENTS))
    """``run.completed`` stands for run.succeeded, run.failed and run.cancelled."""
    agents: list[str] | None = None
    types: list[str] | None = None
    enabled: bool = True
    description: str | None = Field(default=None, max_length=500)
    created_at: str | None = None
    source: Literal["config", "api"] = "api"

    def matches(self, event: dict[str, Any]) -> bool:
        etype = event.get("type")
        wanted: set[str] = set(self.events)
        if "run.completed" in wanted:
            wanted.update(RUN_DONE)
        if not self.enabled or etype not in wanted:
            return False
        if self.agents is not None and event.get("agent_id") not in self.agents:
            return False
        itype = (event.get("data") or {}).get("type")
        return self.types is None or (str(etype).startswith("interrupt.") and itype in self.types)

    def public(self) -> dict[str, Any]:
        """The subscription as the API shows it: never its secret."""
        return self.model_dump(exclude={"secret"})


def configured(settings: Settings) -> dict[str, Subscription]:
    """The subscriptions from the configuration, checked; raises WebhookConfigError."""
    entries: list[Any] = list(settings.webhooks or [])
    if settings.webhooks_file:
        try:
            text = Path(settings.webhooks_file).read_text()
            entries += json_list(text, settings.webhooks_file) if text.strip() else []
        except OSError as exc:
            raise WebhookConfigError(f"BROKER_WEBHOOKS_FILE: {exc}") from exc
        except ValueError as exc:
            raise WebhookConfigError(str(exc)) from exc
    out: dict[str, Subscription] = {}
    for n, entry in enumerate(entries):
        try:
            sub = Subscription.model_validate({**entry, "source": "config"})
            signing.check_secret(sub.secret, dev=settings.dev)
        except (ValidationError, TypeError) as exc:
            why = validation_message(exc) if isinstance(exc, ValidationError) else str(exc)
            raise WebhookConfigError(f"configured webhook {n}: {why}") from exc
        except signing.WebhookSecretError as exc:
            raise WebhookConfigError(f"configured webhook {n}: {exc}") from exc
        if sub.id in out:
            raise WebhookConfigError(f"configured webhook id {sub.id!r} appears twice")
        out[sub.id] = sub
    return out


async def managed(store: Store) -> dict[str, Subscription]:
    raw = await store.r.hgetall(store.keys.webhooks)
    return {sid: Subscription.model_validate_json(text) for sid, text in raw.items()}


async def every(store: Store, config: dict[str, Subscription]) -> list[Subscription]:
    return [*config.values(), *(await managed(store)).values()]


async def find(store: Store, config: dict[str, Subscription], sid: str) -> Subscription | None:
    if not is_id(sid):
        return None  # no subscription id has another shape
    if sid in config:
        return config[sid]
    raw = await store.r.hget(store.keys.webhooks, sid)
    return Subscription.model_validate_json(raw) if raw else None


async def version(store: Store) -> str | None:
    """The managed subscriptions' version: it changes whenever one is saved or deleted."""
    value: str | None = await store.r.get(store.keys.webhooks_version)
    return value


def changed_at_ms(value: str | None) -> int:
    """The Redis time (ms) of the change that set ``value``; 0 when there is none."""
    head = (value or "").partition("-")[0]
    return int(head) if head.isdigit() else 0


async def _new_version(store: Store) -> str:
    # Redis's clock, the one event ids use: a dispatcher that starts reading for this
    # change starts at the events from this moment on
    seconds, micros = await store.r.time()
    return f"{int(seconds) * 1000 + int(micros) // 1000}-{uuid.uuid4().hex[:8]}"


async def save(store: Store, sub: Subscription) -> None:
    """Saves a subscription; returns once the replicas have it (broker/core/durable.py)."""
    stamp = await _new_version(store)

    def build(pipe: Any) -> None:
        pipe.hset(store.keys.webhooks, sub.id, sub.model_dump_json())
        pipe.set(store.keys.webhooks_version, stamp)

    await store.durable.commands(build)


async def delete(store: Store, sid: str) -> bool:
    """Removes a subscription and its delivery log, once the replicas have it too."""
    stamp = await _new_version(store)

    def build(pipe: Any) -> None:
        pipe.hdel(store.keys.webhooks, sid)
        pipe.delete(store.keys.webhook_deliveries(sid))
        pipe.set(store.keys.webhooks_version, stamp)

    removed, *_ = await store.durable.commands(build)
    return bool(removed)


async def log_delivery(store: Store, sid: str, entry: dict[str, Any]) -> None:
    key = store.keys.webhook_deliveries(sid)
    async with store.r.pipeline(transaction=True) as pipe:
        pipe.lpush(key, dumps(entry))
        pipe.ltrim(key, 0, store.settings.webhook_log_max - 1)
        await pipe.execute()


async def deliveries(store: Store, sid: str, limit: int) -> list[dict[str, Any]]:
    """The subscription's delivery attempts, newest first."""
    raw = await store.r.lrange(store.keys.webhook_deliveries(sid), 0, limit - 1)
    return [loads(item) for item in raw]


async def payload(store: Store, eid: str, event: dict[str, Any]) -> dict[str, Any]:
    """The JSON body of one event's delivery (links are minted per subscription)."""
    data: dict[str, Any] = {
        "event_id": eid,
        "run_id": event.get("run_id"),
        "thread_id": event.get("thread_id"),
        "agent_id": event.get("agent_id"),
        **(event.get("data") or {}),
    }
    iid = data.get("interrupt_id")
    if str(event.get("type", "")).startswith("interrupt.") and iid:
        with contextlib.suppress(errors.InterruptNotFound):
            data["interrupt"] = (await store.interrupt(iid)).view()
    return {"type": event.get("type"), "timestamp": iso(event.get("ts") or now_ms()), "data": data}


async def with_links(store: Store, body: dict[str, Any]) -> dict[str, Any]:
    """Adds fresh action links to an ``interrupt.created`` body while the interrupt waits."""
    if body["type"] != "interrupt.created":
        return body
    iid = body["data"].get("interrupt_id")
    try:
        h = await store.interrupt(iid) if iid else None
    except errors.InterruptNotFound:
        return body
    if h is None or h.status != InterruptStatus.PENDING:
        return body
    minted = links.mint(store.settings, h)
    return {**body, "data": {**body["data"], "links": minted}}
