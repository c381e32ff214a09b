"""Clean failure modes: while Redis is down, full or stalled, every endpoint answers 503
with the JSON error shape and ``Retry-After`` (never a 500 or a reset), streams end with
a reconnect hint, and no process exits; afterwards nothing is lost or applied twice.

Each test runs its own ``redis-server`` (tests/servers.py), never the shared one.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import exceptions as redis_errors
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from broker.core import errors
from tests.flow import answer, next_interrupt, start, wait_status
from tests.harness import Broker, wait_until
from tests.outage import FAST_ENV, Load, check_responses, fault, wait_applied
from tests.servers import RedisServer

FAULTS = ("crash", "full", "stall")


def test_outages_are_told_apart_from_bugs() -> None:
    oom = "OOM command not allowed when used memory > 'maxmemory'."
    for exc in (
        redis_errors.ConnectionError("Connection refused"),
        redis_errors.TimeoutError("Timeout reading from socket"),
        redis_errors.BusyLoadingError("Redis is loading the dataset in memory"),
        redis_errors.ReadOnlyError("You can't write against a read only replica."),
        redis_errors.WatchError("A ConnectionError occurred on while watching one or more keys"),
        redis_errors.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
        redis_errors.ResponseError(f"Error running script (call to f_1): @user_script:3: {oom}"),
        errors.ShuttingDown("stopping"),
    ):
        got = errors.unavailable(exc)
        assert got is not None and got.status_code == 503, exc
    for exc in (
        redis_errors.ResponseError("WRONGTYPE Operation against a key"),
        redis_errors.DataError("bad"),
        redis_errors.WatchError("Watched variable changed."),
        ValueError("a bug"),
        errors.InvalidAnswer("no"),
    ):
        assert errors.unavailable(exc) is None, exc


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    s = RedisServer(tmp_path / "redis", aof=True).start()
    try:
        yield s
    finally:
        s.stop()


def _broker(server: RedisServer, tmp_path: Path, prefix: str, **env: str) -> Broker:
    return Broker(server.url, prefix, tmp_path, **{**FAST_ENV, **env})


def _pids(b: Broker) -> list[int]:
    assert b.api is not None
    return [b.api.p.pid, *(w.p.pid for w in b.workers)]


def _all_running(b: Broker) -> None:
    assert b.api is not None
    for proc in [b.api, *b.workers]:
        assert proc.p.poll() is None, f"a process exited:\n{proc.output()[-3000:]}"


@pytest.mark.slow
@pytest.mark.parametrize("kind", (*FAULTS, "readonly"))
def test_every_response_during_an_outage_is_503_and_nothing_is_lost(
    server: RedisServer, tmp_path: Path, kind: str
) -> None:
    broker = _broker(server, tmp_path, f"ibfm{kind}")
    with broker.serving() as b, Load(b.url) as load:
        pids = _pids(b)
        wait_until(lambda: len(load.answered) >= 3, "the load to answer a few runs")
        before = len(load.seen)
        fault(server, kind)
        # the API answers again, and the load gets through once more
        done = len(load.seen)
        wait_until(lambda: load.count(202) and load.seen[-1].status != 503, "recovery")
        wait_until(lambda: len(load.seen) > done + 8, "more requests after recovery")
        during = load.seen[before:]
        assert any(s.status == 503 for s in during), "the outage was never observed"
        wait_applied(load, server, f"ibfm{kind}")
        check_responses(load.seen)
        _all_running(b)
        assert _pids(b) == pids


@pytest.mark.slow
def test_a_worker_lives_through_a_restart_a_full_redis_and_a_stall(
    server: RedisServer, tmp_path: Path
) -> None:
    broker = _broker(server, tmp_path, "ibfmworker")
    with broker.serving() as b, httpx.Client(base_url=b.url, timeout=30) as api:
        worker = b.workers[0]
        pid = worker.p.pid
        for kind in FAULTS:
            fault(server, kind, hold_s=4)
            # readiness comes back on its own: the same worker heartbeats again
            wait_until(lambda: api.get("/readyz").status_code == 200, "readiness", worker)
            run = start(api, "counter", {})
            answer(api, next_interrupt(api, run["run_id"])["id"], 1)
            assert wait_status(api, run["run_id"], "succeeded")["status"] == "succeeded"
            assert worker.p.poll() is None and worker.p.pid == pid


def _sse_events(text: str) -> list[dict[str, Any]]:
    """Parses an SSE body into its events (id, event, data, retry)."""
    out = []
    for block in text.split("\n\n"):
        fields: dict[str, Any] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if fields:
            out.append(fields)
    return out


class SseReader:
    """Reads one SSE stream to its end in a thread."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.headers = headers or {}
        self.text = ""
        self.error: str | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            with httpx.stream("GET", self.url, headers=self.headers, timeout=60) as r:
                assert r.status_code == 200, r.status_code
                for chunk in r.iter_text():
                    self.text += chunk
        except httpx.HTTPError as exc:
            self.error = f"{type(exc).__name__}: {exc}"

    def events(self) -> list[dict[str, Any]]:
        return _sse_events(self.text)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ("crash", "stall"))
def test_streams_end_with_a_reconnect_hint_and_resuming_misses_nothing(
    server: RedisServer, tmp_path: Path, kind: str
) -> None:
    broker = _broker(server, tmp_path, f"ibfmstream{kind}")
    with broker.serving() as b, httpx.Client(base_url=b.url, timeout=30) as api:
        run = start(api, "counter", {})
        run_id = run["run_id"]
        next_interrupt(api, run_id)
        sse = SseReader(f"{b.url}/runs/{run_id}/events")
        ws_url = b.url.replace("http://", "ws://") + "/ws?after=0"
        frames: list[dict[str, Any]] = []
        closed: dict[str, Any] = {}

        def read_ws() -> None:
            with connect(ws_url, open_timeout=30) as ws:
                try:
                    for raw in ws:
                        frames.append(json.loads(raw))
                except ConnectionClosed:
                    pass
                finally:
                    closed["code"] = ws.close_code

        ws_thread = threading.Thread(target=read_ws, daemon=True)
        ws_thread.start()
        wait_until(lambda: any(f.get("type") == "live" for f in frames), "the socket to go live")
        wait_until(lambda: "run.interrupted" in sse.text, "the SSE replay")

        # a stall longer than a blocking read's allowance (timeout 1 s + block 5 s)
        fault(server, kind, hold_s=4 if kind == "crash" else 8)
        sse.thread.join(60)
        ws_thread.join(60)
        assert sse.error is None, sse.error  # ended, not reset
        hint = sse.events()[-1]
        assert hint["event"] == "error" and int(hint["retry"]) > 0, hint
        data = json.loads(hint["data"])
        assert data["code"] == "redis_unavailable", data
        seen_ids = [e["id"] for e in sse.events() if "id" in e]
        assert data["resume_from"] == seen_ids[-1]

        assert closed["code"] == 1013, closed
        ws_hint = frames[-1]
        assert ws_hint["type"] == "error" and ws_hint["code"] == "redis_unavailable"
        ws_ids = [f["id"] for f in frames if f.get("type") not in ("live", "error")]
        assert ws_hint["resume_from"] == ws_ids[-1]

        # after recovery: the run goes on; resuming from the hints misses nothing
        wait_until(lambda: api.get("/readyz").status_code == 200, "readiness")
        answer(api, next_interrupt(api, run_id)["id"], 1)
        wait_status(api, run_id, "succeeded")
        rest = httpx.get(
            f"{b.url}/runs/{run_id}/events",
            headers={"Last-Event-ID": data["resume_from"]},
            timeout=30,
        )
        every = httpx.get(f"{b.url}/runs/{run_id}/events", timeout=30)
        ids_all = [e["id"] for e in _sse_events(every.text) if "id" in e]
        ids_rest = [e["id"] for e in _sse_events(rest.text) if "id" in e]
        assert seen_ids + ids_rest == ids_all
        assert _sse_events(every.text)[-1]["event"] == "run.succeeded"

        after_ws: list[dict[str, Any]] = []
        resume_url = b.url.replace("http://", "ws://") + f"/ws?after={ws_hint['resume_from']}"
        with connect(resume_url, open_timeout=30) as ws:
            while True:
                frame = json.loads(ws.recv(timeout=30))
                if frame.get("type") == "live":
                    break
                after_ws.append(frame)
        with connect(ws_url, open_timeout=30) as ws:
            full: list[dict[str, Any]] = []
            while True:
                frame = json.loads(ws.recv(timeout=30))
                if frame.get("type") == "live":
                    break
                full.append(frame)
        assert ws_ids + [f["id"] for f in after_ws] == [f["id"] for f in full]
        assert any(f["type"] == "run.succeeded" for f in after_ws)


@pytest.mark.slow
def test_requests_during_a_stall_end_within_the_socket_timeout(
    server: RedisServer, tmp_path: Path
) -> None:
    # no timing assertion: the request ends at all (503) while Redis is still stopped
    broker = _broker(server, tmp_path, "ibfmstall")
    with broker.serving() as b, httpx.Client(base_url=b.url, timeout=60) as api:
        server.pause()
        try:
            r = api.get("/interrupts")
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "redis_unavailable"
            assert "retry-after" in r.headers
            assert api.get("/readyz").status_code == 503
            # AG-UI checks the thread before its stream starts (docs/design.md,
            # "Isolation"), so a stall there is a plain 503 with the error shape too
            agui = api.post(
                "/agui/counter",
                json={
                    "threadId": "t-stalled",
                    "runId": "r1",
                    "state": {},
                    "messages": [{"id": "m1", "role": "user", "content": "hi"}],
                    "tools": [],
                    "context": [],
                    "forwardedProps": {},
                },
            )
            assert agui.status_code == 503, agui.text
            assert agui.json()["error"]["code"] == "redis_unavailable"
            assert "retry-after" in agui.headers
        finally:
            server.resume()
        wait_until(lambda: api.get("/interrupts").status_code == 200, "Redis to answer")
        _all_running(b)
