"""Runs in flight through a Redis failover, and a ledger of every acknowledgement.

Each run of the ``counter`` graph is started with an ``Idempotency-Key`` and its one
interrupt gets two concurrent answers, each with a key of its own; every request is
retried on 503 and on connection errors with the same key, as a client should. The
ledger keeps what the broker acknowledged (202 runs, 200 answers), so the caller can
check that nothing acknowledged was lost: no run vanishes, no answered question is
asked again, every run succeeds. Used by tests/test_sentinel.py and bench/failover.py.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

RETRY_S = 0.1


@dataclass
class Ledger:
    runs: dict[str, str] = field(default_factory=dict)  # run id -> thread id (202)
    answered: dict[str, Any] = field(default_factory=dict)  # interrupt id -> value (200)
    answer_runs: dict[str, str] = field(default_factory=dict)  # interrupt id -> run id
    double_wins: list[str] = field(default_factory=list)  # interrupts with two 200s
    vanished: set[str] = field(default_factory=set)  # acknowledged runs that 404ed
    reasked: set[str] = field(default_factory=set)  # answered interrupts pending again
    ended: dict[str, str] = field(default_factory=dict)  # run id -> final status
    # questions a client saw that a failover took back before Redis confirmed them (the
    # answer got 404 and the run asked again): never acknowledged, so not a loss
    withdrawn: set[str] = field(default_factory=set)
    questions: dict[str, set[str]] = field(default_factory=dict)  # run id -> interrupt ids
    unexpected: list[str] = field(default_factory=list)
    retried: int = 0  # 503s and connection errors that were retried
    failover_at: float | None = None
    switched_at: float | None = None  # when the sentinels named the new primary
    first_write_after_switch: float | None = None
    all_done_at: float | None = None

    def write_acked(self, started: float) -> None:
        now = time.monotonic()
        if (
            self.switched_at is not None
            and started >= self.switched_at
            and self.first_write_after_switch is None
        ):
            self.first_write_after_switch = now


async def _send(
    client: httpx.AsyncClient,
    ledger: Ledger,
    method: str,
    url: str,
    *,
    key: str | None = None,
    json: Any = None,
    deadline: float,
) -> httpx.Response:
    """One request, retried with the same Idempotency-Key until it gets a real answer."""
    headers = {"Idempotency-Key": key} if key else {}
    while True:
        try:
            r = await client.request(method, url, json=json, headers=headers)
            if r.status_code != 503:
                return r
        except httpx.TransportError:
            pass
        ledger.retried += 1
        if time.monotonic() > deadline:
            raise AssertionError(f"{method} {url} kept failing past the deadline")
        await asyncio.sleep(RETRY_S)


async def _answer(
    client: httpx.AsyncClient, ledger: Ledger, run_id: str, iid: str, deadline: float
) -> None:
    async def one(value: str) -> None:
        started = time.monotonic()
        r = await _send(
            client,
            ledger,
            "POST",
            f"/interrupts/{iid}/resolve",
            key=f"{iid}-{value}",
            json={"value": value, "resolved_by": value},
            deadline=deadline,
        )
        if r.status_code == 200:
            ledger.write_acked(started)
            if iid in ledger.answered:
                ledger.double_wins.append(iid)
            ledger.answered[iid] = value
            ledger.answer_runs[iid] = run_id
        elif r.status_code == 404 and iid not in ledger.answered:
            ledger.withdrawn.add(iid)
        elif r.status_code != 409:
            ledger.unexpected.append(f"resolve {iid}: {r.status_code} {r.text[:200]}")

    await asyncio.gather(one("a"), one("b"))


async def drive_run(
    client: httpx.AsyncClient, ledger: Ledger, n: int, deadline: float, poll_s: float
) -> None:
    """One run: start it, answer its interrupt twice at once, follow it to its end."""
    started = time.monotonic()
    r = await _send(
        client,
        ledger,
        "POST",
        "/runs",
        key=f"run-{n}",
        json={"agent_id": "counter", "input": {}, "metadata": {"n": n}},
        deadline=deadline,
    )
    if r.status_code != 202:
        ledger.unexpected.append(f"start {n}: {r.status_code} {r.text[:200]}")
        return
    ledger.write_acked(started)
    run_id = r.json()["run_id"]
    ledger.runs[run_id] = r.json()["thread_id"]
    asked = ledger.questions.setdefault(run_id, set())
    while time.monotonic() < deadline:
        await asyncio.sleep(poll_s * (0.5 + random.random()))
        r = await _send(client, ledger, "GET", f"/runs/{run_id}", deadline=deadline)
        if r.status_code == 404:
            ledger.vanished.add(run_id)
            return
        run = r.json()
        for iid in run.get("pending_interrupts", []):
            if iid in ledger.answered:
                ledger.reasked.add(iid)
            elif iid not in asked:
                asked.add(iid)
                await _answer(client, ledger, run_id, iid, deadline)
        if run["status"] in ("succeeded", "failed", "cancelled"):
            ledger.ended[run_id] = run["status"]
            return
    ledger.unexpected.append(f"run {run_id} did not end in time")


async def drive(
    base_url: str,
    runs: int,
    *,
    fault: Callable[[], Awaitable[None]],
    fault_after: int,
    spread_s: float = 4.0,
    poll_s: float = 0.5,
    deadline_s: float = 240.0,
    ledger: Ledger | None = None,
    verbose: bool = False,
) -> Ledger:
    """``runs`` runs started over ``spread_s``; ``fault`` is awaited once ``fault_after``
    of them were acknowledged (it sets the ledger's failover times itself)."""
    ledger = ledger or Ledger()
    deadline = time.monotonic() + deadline_s
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:

        async def later(n: int) -> None:
            await asyncio.sleep(spread_s * n / runs)
            await drive_run(client, ledger, n, deadline, poll_s)

        async def progress() -> None:
            while ledger.all_done_at is None and verbose:
                await asyncio.sleep(2)
                print(
                    f"  runs {len(ledger.runs)} answered {len(ledger.answered)} "
                    f"ended {len(ledger.ended)} retried {ledger.retried} "
                    f"vanished {len(ledger.vanished)} reasked {len(ledger.reasked)}",
                    flush=True,
                )

        asyncio.get_running_loop().create_task(progress())

        async def trigger() -> None:
            while len(ledger.runs) < fault_after and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            await fault()

        await asyncio.gather(trigger(), *(later(n) for n in range(runs)))
    ledger.all_done_at = time.monotonic()
    return ledger


async def final_answers(base_url: str, ledger: Ledger) -> dict[str, dict[str, Any]]:
    """Each answered interrupt as the broker now has it."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        replies = await asyncio.gather(*(client.get(f"/interrupts/{i}") for i in ledger.answered))
    return {iid: r.json() for iid, r in zip(ledger.answered, replies, strict=True)}


def asked_again(ledger: Ledger) -> list[str]:
    """Runs that put their question more than once (a withdrawn, unconfirmed one aside)."""
    return [r for r, ids in ledger.questions.items() if len(ids - ledger.withdrawn) > 1]


def report(ledger: Ledger, label: str) -> str:
    t0 = ledger.failover_at or 0.0

    def since(t: float | None) -> str:
        return f"{t - t0:6.2f} s" if t is not None else "     -  "

    return (
        f"{label}: {len(ledger.runs)} runs, {len(ledger.answered)} answers acknowledged, "
        f"{ledger.retried} retried requests, {len(ledger.withdrawn)} unconfirmed questions "
        "withdrawn\n"
        f"  sentinels named the new primary  {since(ledger.switched_at)}\n"
        f"  first write acknowledged after   {since(ledger.first_write_after_switch)}\n"
        f"  all runs done                    {since(ledger.all_done_at)}"
    )
