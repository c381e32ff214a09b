"""Client-side steps shared by the end-to-end tests."""

from __future__ import annotations

from typing import Any

import httpx

from tests.harness import wait_until


def start(api: httpx.Client, agent_id: str, input: Any, **extra: Any) -> dict[str, Any]:
    r = api.post("/runs", json={"agent_id": agent_id, "input": input, **extra})
    assert r.status_code == 202, r.text
    body: dict[str, Any] = r.json()
    return body


def run_state(api: httpx.Client, run_id: str) -> dict[str, Any]:
    r = api.get(f"/runs/{run_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def wait_status(api: httpx.Client, run_id: str, *statuses: str, pending: int = 1) -> dict[str, Any]:
    """Waits until the run is in one of ``statuses`` (``interrupted`` also needs
    ``pending`` open interrupts)."""

    def check() -> dict[str, Any] | None:
        run = run_state(api, run_id)
        if run["status"] not in statuses:
            return None
        if run["status"] == "interrupted" and len(run["pending_interrupts"]) < pending:
            return None
        return run

    result: dict[str, Any] = wait_until(check, f"run {run_id} to be {'/'.join(statuses)}")
    return result


def pending(api: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    r = api.get("/interrupts", params={"run_id": run_id})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def answer(api: httpx.Client, interrupt_id: str, value: Any, **extra: Any) -> dict[str, Any]:
    r = api.post(f"/interrupts/{interrupt_id}/resolve", json={"value": value, **extra})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def next_interrupt(api: httpx.Client, run_id: str, after: str | None = None) -> dict[str, Any]:
    """Waits for the run to stop on an interrupt other than ``after``; returns it."""

    def check() -> dict[str, Any] | None:
        run = run_state(api, run_id)
        assert run["status"] not in ("failed", "succeeded", "cancelled"), run
        if run["status"] != "interrupted":
            return None
        open_ids = [i for i in run["pending_interrupts"] if i != after]
        if not open_ids:
            return None
        got: dict[str, Any] = api.get(f"/interrupts/{open_ids[0]}").json()
        return got

    result: dict[str, Any] = wait_until(check, f"run {run_id} to stop on a new interrupt")
    return result
