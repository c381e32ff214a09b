"""Each REST route as a request description, shared by the sync and the async client.

A ``Call`` says what to send and whether sending it again is safe: reads are, and so
are writes that carry an ``Idempotency-Key`` (the broker answers a repeat with the
first response and does nothing twice). The clients only do the I/O.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from interrupt_broker_client.models import ActionLink, Page


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] | None = None
    retry: bool = False
    """Safe to send again after a connection error or a 503."""


def _seg(value: str) -> str:
    return quote(value, safe="")


def _params(**given: Any) -> dict[str, Any]:
    return {k: v for k, v in given.items() if v is not None}


def _body(**given: Any) -> dict[str, Any]:
    return {k: v for k, v in given.items() if v is not None}


def auth_headers(api_key: str | None, headers: dict[str, str] | None) -> dict[str, str]:
    """The headers every request carries: the caller's, and the key as a bearer token."""
    out = dict(headers or {})
    if api_key:
        out["Authorization"] = f"Bearer {api_key}"
    return out


def new_key() -> str:
    """A fresh Idempotency-Key."""
    return str(uuid.uuid4())


def list_agents() -> Call:
    return Call("GET", "/agents", retry=True)


def start_run(
    agent_id: str,
    input: Any,
    thread_id: str | None,
    metadata: dict[str, Any] | None,
    idempotency_key: str | None,
) -> Call:
    body = _body(agent_id=agent_id, input=input, thread_id=thread_id, metadata=metadata)
    key = idempotency_key or new_key()
    return Call("POST", "/runs", json=body, headers={"Idempotency-Key": key}, retry=True)


def get_run(run_id: str) -> Call:
    return Call("GET", f"/runs/{_seg(run_id)}", retry=True)


def list_runs(**filters: str | int | None) -> Call:
    """``GET /runs``; the client's ``list_runs`` names and types the filters."""
    return Call("GET", "/runs", params=_params(**filters), retry=True)


def cancel_run(run_id: str) -> Call:
    return Call("POST", f"/runs/{_seg(run_id)}/cancel")


def run_events_path(run_id: str) -> str:
    return f"/runs/{_seg(run_id)}/events"


def list_interrupts(**filters: str | int | None) -> Call:
    """``GET /interrupts``; the client's ``list_interrupts`` names and types the filters."""
    return Call("GET", "/interrupts", params=_params(**filters), retry=True)


def get_interrupt(interrupt_id: str) -> Call:
    return Call("GET", f"/interrupts/{_seg(interrupt_id)}", retry=True)


def interrupt_audit(interrupt_id: str) -> Call:
    return Call("GET", f"/interrupts/{_seg(interrupt_id)}/audit", retry=True)


def resolve(
    interrupt_id: str,
    value: Any,
    *,
    comment: str | None,
    resolved_by: str | None,
    if_match: str | None,
    idempotency_key: str | None,
) -> Call:
    """An answer; its Idempotency-Key is made here when not given, so every retry of
    this one answer carries the same key and the broker takes it at most once."""
    headers = {"Idempotency-Key": idempotency_key or new_key()}
    if if_match is not None:
        headers["If-Match"] = if_match if if_match == "*" or '"' in if_match else f'"{if_match}"'
    body = {"value": value, **_body(comment=comment, resolved_by=resolved_by)}
    return Call(
        "POST", f"/interrupts/{_seg(interrupt_id)}/resolve", json=body, headers=headers, retry=True
    )


def resolve_many(
    value: Any,
    *,
    ids: list[str] | None,
    filter: dict[str, str] | None,
    comment: str | None,
    resolved_by: str | None,
) -> Call:
    if (ids is None) == (filter is None):
        raise ValueError("give exactly one of ids and filter")
    body = _body(ids=ids, filter=filter, comment=comment, resolved_by=resolved_by)
    return Call("POST", "/interrupts/resolve", json={**body, "value": value})


def assign(
    interrupt_id: str, assignees: list[str], watchers: list[str] | None, comment: str | None
) -> Call:
    body = _body(assignees=assignees, watchers=watchers, comment=comment)
    return Call("POST", f"/interrupts/{_seg(interrupt_id)}/assign", json=body)


def withdraw(interrupt_id: str) -> Call:
    return Call("POST", f"/interrupts/{_seg(interrupt_id)}/withdraw")


def page(body: dict[str, Any]) -> Page[Any]:
    return Page(items=list(body.get("items") or []), next_cursor=body.get("next_cursor"))


def link_for(links: list[ActionLink], choice: str) -> ActionLink:
    """The link of ``choice`` among an interrupt's action links (``approve``,
    ``reject``, a slot's name...); KeyError naming the choices there are otherwise."""
    for link in links:
        if link["choice"] == choice:
            return link
    raise KeyError(f"no link for {choice!r}; choices: {', '.join(x['choice'] for x in links)}")


def link_token(link: ActionLink | str) -> str:
    """A link's token: from the link, its URL (``…/links/<token>``), or the token itself."""
    url = link["url"] if isinstance(link, dict) else link
    return url.rstrip("/").rsplit("/links/", 1)[-1].split("?", 1)[0]


def show_link(link: ActionLink | str) -> Call:
    """The GET of a link: its confirmation page, which changes nothing."""
    return Call("GET", f"/links/{_seg(link_token(link))}", retry=True)


def use_link(
    link: ActionLink | str, answer: str | None, comment: str | None, fingerprint: str | None
) -> Call:
    """The POST of a link's confirmation form, sent to this client's broker (the link's
    host is the broker's public URL, which may not be where the client reaches it)."""
    token = link_token(link)
    form = _body(token=token, answer=answer, comment=comment, fingerprint=fingerprint)
    return Call("POST", f"/links/{_seg(token)}", form=form)
