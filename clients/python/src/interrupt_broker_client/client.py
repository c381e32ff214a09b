"""``Client``: the broker's REST API, its run events (SSE) and ``WS /ws``, blocking.

``AsyncClient`` (aclient.py) has the same methods, awaited. Each route is described
once in _calls.py; here is only the sending, the retrying and the reading. Webhook
subscriptions (_admin.py), action links (_links.py), the AG-UI endpoint (_agui.py) and
the service routes (_service.py: health, readiness, metrics, sign-in, receipt keys) are
mixed in, their sync and async methods side by side.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx

from interrupt_broker_client import _calls, _sync_streams
from interrupt_broker_client._admin import WebhookAdmin
from interrupt_broker_client._agui import AguiRoutes
from interrupt_broker_client._calls import Call
from interrupt_broker_client._follow import Follower
from interrupt_broker_client._links import ActionLinks
from interrupt_broker_client._service import ServiceRoutes
from interrupt_broker_client._ws import ws_url
from interrupt_broker_client.errors import from_response
from interrupt_broker_client.models import (
    Agent,
    AuditEntry,
    BulkOutcome,
    Event,
    Fetched,
    Interrupt,
    Page,
    Run,
    RunStarted,
)
from interrupt_broker_client.retry import Retry, wait_before_retry


class Client(ActionLinks, AguiRoutes, ServiceRoutes, WebhookAdmin):
    """A blocking client of one broker.

    ``retry`` governs requests (reads and keyed writes are sent again after a
    connection error or a 503); ``reconnect`` governs followers of live events (failed
    reconnects in a row before giving up). ``transport`` and other httpx options go to
    the underlying ``httpx.Client``; or pass your own as ``http_client`` (its base URL
    and headers are used as they are, and closing this client leaves it open).
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        retry: Retry | None = None,
        reconnect: Retry | None = None,
        headers: dict[str, str] | None = None,
        http_client: httpx.Client | None = None,
        **httpx_options: Any,
    ) -> None:
        self._headers = _calls.auth_headers(api_key, headers)
        if http_client is not None and "authorization" in http_client.headers:
            # the live-event followers open their own connections: they carry the key too
            self._headers.setdefault("Authorization", http_client.headers["authorization"])
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(
            base_url=base_url, timeout=timeout, headers=self._headers, **httpx_options
        )
        self.retry = retry or Retry()
        self.reconnect = reconnect or Retry(attempts=30)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sending -------------------------------------------------------------------

    def _send(self, call: Call) -> httpx.Response:
        failures = 0
        while True:
            try:
                response = self._http.request(
                    call.method,
                    call.path,
                    params=call.params,
                    headers=call.headers,
                    json=call.json,
                    data=call.form,
                )
            except httpx.TransportError as exc:
                failures += 1
                wait = wait_before_retry(self.retry, failures, call.retry, error=exc)
                if wait is None:
                    raise
                time.sleep(wait)
                continue
            if response.status_code < 400:
                return response
            failures += 1
            wait = wait_before_retry(self.retry, failures, call.retry, response=response)
            if wait is None:
                return response
            time.sleep(wait)

    def _json(self, call: Call) -> Any:
        response = self._send(call)
        if response.status_code >= 400:
            raise from_response(response)
        return response.json()

    # -- agents and runs -------------------------------------------------------------

    def list_agents(self) -> list[Agent]:
        """The registered agents this key may use."""
        items: list[Agent] = self._json(_calls.list_agents())["items"]
        return items

    def start_run(
        self,
        agent_id: str,
        input: Any = None,
        *,
        thread_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> RunStarted:
        """Starts a run. It carries an ``Idempotency-Key`` (made here when not given), so
        a retry after a lost response gets the same run rather than a second one."""
        call = _calls.start_run(
            agent_id, {} if input is None else input, thread_id, metadata, idempotency_key
        )
        started: RunStarted = self._json(call)
        return started

    def get_run(self, run_id: str) -> Run:
        run: Run = self._json(_calls.get_run(run_id))
        return run

    def list_runs(
        self,
        *,
        status: str | None = None,
        agent_id: str | None = None,
        thread_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        order: str | None = None,
    ) -> Page[Run]:
        """One page of runs, newest first unless ``order="asc"``."""
        call = _calls.list_runs(
            status=status,
            agent_id=agent_id,
            thread_id=thread_id,
            limit=limit,
            cursor=cursor,
            order=order,
        )
        return _calls.page(self._json(call))

    def iter_runs(self, **filters: Any) -> Iterator[Run]:
        """Every run the filters of ``list_runs`` pick, page after page."""
        return self._pages(self.list_runs, filters)

    def cancel_run(self, run_id: str) -> dict[str, Any]:
        """Stops a queued, running or interrupted run; its pending interrupts close."""
        got: dict[str, Any] = self._json(_calls.cancel_run(run_id))
        return got

    def run_events(self, run_id: str, *, last_event_id: str | None = None) -> Iterator[Event]:
        """The run's events, from the start (or after ``last_event_id``) to its end.

        A dropped connection, or a stream the broker ends early (Redis unavailable, the
        API process stopping), is followed by a reconnect with ``Last-Event-ID``: every
        event comes once, in order."""
        follower = Follower(last_event_id, self.reconnect)
        return _sync_streams.run_events(self._http, _calls.run_events_path(run_id), follower)

    # -- interrupts --------------------------------------------------------------------

    def list_interrupts(
        self,
        *,
        status: str | None = None,
        agent_id: str | None = None,
        type: str | None = None,
        thread_id: str | None = None,
        run_id: str | None = None,
        assigned_to: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        order: str | None = None,
    ) -> Page[Interrupt]:
        """One page of interrupts (pending unless ``status`` says otherwise), oldest first."""
        call = _calls.list_interrupts(
            status=status,
            agent_id=agent_id,
            type=type,
            thread_id=thread_id,
            run_id=run_id,
            assigned_to=assigned_to,
            limit=limit,
            cursor=cursor,
            order=order,
        )
        return _calls.page(self._json(call))

    def iter_interrupts(self, **filters: Any) -> Iterator[Interrupt]:
        """Every interrupt the filters of ``list_interrupts`` pick, page after page."""
        return self._pages(self.list_interrupts, filters)

    def get_interrupt(self, interrupt_id: str) -> Fetched:
        """The interrupt and its ETag, the fingerprint to answer it with (``if_match``)."""
        response = self._send(_calls.get_interrupt(interrupt_id))
        if response.status_code >= 400:
            raise from_response(response)
        return Fetched(response.json(), response.headers.get("etag"))

    def audit(self, interrupt_id: str) -> list[AuditEntry]:
        """Every attempt to answer the interrupt, accepted or refused, oldest first."""
        items: list[AuditEntry] = self._json(_calls.interrupt_audit(interrupt_id))["items"]
        return items

    def resolve(
        self,
        interrupt_id: str,
        value: Any,
        *,
        comment: str | None = None,
        resolved_by: str | None = None,
        if_match: str | None = None,
        idempotency_key: str | None = None,
    ) -> Interrupt:
        """Answers an interrupt; the resolved (or, in an undo window, accepted) interrupt.

        The answer carries an ``Idempotency-Key`` (made here when not given), and is sent
        again with the same key after a connection error or a 503: the broker takes it
        once. ``if_match`` (a fingerprint, quoted or bare, or ``*``) binds the answer to
        the question shown: ``FingerprintMismatch`` when it changed."""
        call = _calls.resolve(
            interrupt_id,
            value,
            comment=comment,
            resolved_by=resolved_by,
            if_match=if_match,
            idempotency_key=idempotency_key,
        )
        got: Interrupt = self._json(call)
        return got

    def resolve_many(
        self,
        value: Any,
        *,
        ids: list[str] | None = None,
        filter: dict[str, str] | None = None,
        comment: str | None = None,
        resolved_by: str | None = None,
    ) -> BulkOutcome:
        """One answer for many interrupts, by ``ids`` or a ``filter``; each is accepted or
        refused on its own (``errors.error_for_result`` turns a refusal into its error)."""
        call = _calls.resolve_many(
            value, ids=ids, filter=filter, comment=comment, resolved_by=resolved_by
        )
        got: BulkOutcome = self._json(call)
        return got

    def assign(
        self,
        interrupt_id: str,
        assignees: list[str],
        *,
        watchers: list[str] | None = None,
        comment: str | None = None,
    ) -> Interrupt:
        """Changes who may answer a pending interrupt (``[]``: anyone), and who watches."""
        got: Interrupt = self._json(_calls.assign(interrupt_id, assignees, watchers, comment))
        return got

    def withdraw(self, interrupt_id: str) -> Interrupt:
        """Takes back an answer held in its undo window: the interrupt is pending again."""
        got: Interrupt = self._json(_calls.withdraw(interrupt_id))
        return got

    # -- live events over WS /ws ----------------------------------------------------------

    def follow(
        self,
        *,
        agent_id: str | None = None,
        type: str | None = None,
        thread_id: str | None = None,
        run_id: str | None = None,
        events: str | None = None,
        after: str | None = None,
    ) -> Iterator[Event]:
        """Live run and interrupt events across runs (``WS /ws``), filtered; from now on,
        or after the event id ``after``. Never ends by itself: a dropped connection is
        followed by a reconnect from the last event seen, so nothing is missed; a
        ``{"type": "gap"}`` frame says events before the requested id were trimmed."""
        filters = _calls._params(
            agent_id=agent_id, type=type, thread_id=thread_id, run_id=run_id, events=events
        )
        base = self._http.base_url
        follower = Follower(after, self.reconnect)
        return _sync_streams.ws_events(
            lambda last: ws_url(base, filters, last), self._headers, follower
        )

    # -- paging ------------------------------------------------------------------------

    @staticmethod
    def _pages(list_page: Any, filters: dict[str, Any]) -> Iterator[Any]:
        cursor = filters.pop("cursor", None)
        while True:
            page = list_page(**filters, cursor=cursor)
            yield from page.items
            if not page.next_cursor:
                return
            cursor = page.next_cursor
