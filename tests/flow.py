"""Client-side steps shared by the end-to-end tests, sent through the project's Python
client (clients/python), so every end-to-end run exercises it too.

Each step wraps the test's ``httpx.Client`` (its base URL and headers, an API key
among them) in a ``Client`` that sends every request once: a test that stops Redis or
the API sees the 503 or the dropped connection itself, not a retry's later success.
"""

from __future__ import annotations

from typing import Any, cast

import httpx
from interrupt_broker_client import Client, Retry

from tests.harness import wait_until

ONCE = Retry(attempts=1)


def client(api: httpx.Client) -> Client:
    """The project's client over ``api``; it sends each request once."""
    return Client(str(api.base_url), http_client=api, retry=ONCE)


def start(api: httpx.Client, agent_id: str, input: Any, **extra: Any) -> dict[str, Any]:
    """Starts a run (``extra``: ``thread_id``, ``metadata``, ``idempotency_key``); like
    every ``start_run`` of the client, it carries an ``Idempotency-Key``."""
    return cast(dict[str, Any], client(api).start_run(agent_id, input, **extra))


def run_state(api: httpx.Client, run_id: str) -> dict[str, Any]:
    return cast(dict[str, Any], client(api).get_run(run_id))


def wait_status(api: httpx.Client, run_id: str, *statuses: str, pending: int = 1) -> dict[str, Any]:
    """Waits until the run is in one of ``statuses`` (``interrupted`` also needs
    ``pending`` open interrupts)."""
    broker = client(api)

    def check() -> dict[str, Any] | None:
        run = broker.get_run(run_id)
        if run["status"] not in statuses:
            return None
        if run["status"] == "interrupted" and len(run["pending_interrupts"]) < pending:
            return None
        return cast(dict[str, Any], run)

    result: dict[str, Any] = wait_until(check, f"run {run_id} to be {'/'.join(statuses)}")
    return result


def pending(api: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    """The run's pending interrupts (the first page of them)."""
    return cast(list[dict[str, Any]], client(api).list_interrupts(run_id=run_id).items)


def read_interrupt(api: httpx.Client, interrupt_id: str) -> dict[str, Any]:
    """The interrupt's JSON as ``GET /interrupts/{id}`` has it now."""
    return cast(dict[str, Any], client(api).get_interrupt(interrupt_id).interrupt)


def answer(api: httpx.Client, interrupt_id: str, value: Any, **extra: Any) -> dict[str, Any]:
    """Answers the interrupt (``extra``: ``comment``, ``resolved_by``, ``if_match``,
    ``idempotency_key``); the answer carries an ``Idempotency-Key``."""
    return cast(dict[str, Any], client(api).resolve(interrupt_id, value, **extra))


def next_interrupt(api: httpx.Client, run_id: str, after: str | None = None) -> dict[str, Any]:
    """Waits for the run to stop on an interrupt other than ``after``; returns it."""
    broker = client(api)

    def check() -> dict[str, Any] | None:
        run = broker.get_run(run_id)
        assert run["status"] not in ("failed", "succeeded", "cancelled"), run
        if run["status"] != "interrupted":
            return None
        open_ids = [i for i in run["pending_interrupts"] if i != after]
        if not open_ids:
            return None
        return cast(dict[str, Any], broker.get_interrupt(open_ids[0]).interrupt)

    result: dict[str, Any] = wait_until(check, f"run {run_id} to stop on a new interrupt")
    return result
