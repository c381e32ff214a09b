"""Real processes for end-to-end tests: the API over HTTP and arq worker processes."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
TEST_AGENTS = (
    "naming=agent.naming:graph,scheduling=agent.scheduling:graph,"
    "tool_approval=agent.tool_approval:graph,parallel=agent.parallel:graph,"
    "counter=tests.graphs:counter,failing=tests.graphs:failing,"
    "gated=tests.graphs:gated,fanout=tests.graphs:fanout,"
    "copilot=examples.copilotkit_agent:graph,"
    "typed=tests.graphs:typed,declared=tests.graphs:declared,"
    "expiring=tests.graphs:expiring,expiring_fail=tests.graphs:expiring_fail,"
    "expiring_later=tests.graphs:expiring_later,slow=tests.graphs:slow,"
    "assigned=tests.graphs:assigned,misassigned=tests.graphs:misassigned,"
    "shifting=tests.graphs:shifting,quorum=tests.graphs:quorum,"
    "quorum_rejects=tests.graphs:quorum_rejects,chained=tests.graphs:chained,"
    "misruled=tests.graphs:misruled,escalating=tests.graphs:escalating"
)
DEADLINE_S = 60.0
RECEIPT_SEED = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
"""The test session's receipt key: every broker signs decision receipts, as a deployment
with receipt keys does (tool_approval's send_email refuses to run without one)."""
RECEIPT_KEYS = json.dumps([{"kid": "test", "private_key": RECEIPT_SEED}])


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range (Linux: 32768 and up).

    A port the kernel hands out for ``bind(0)`` is an ephemeral one, and between this
    check and the server's own bind any outgoing connection (a replica to its primary,
    a client to a server) may take it as its local port; one below the range can only
    be taken by another listener."""
    rng = random.Random()
    for _ in range(500):
        port = rng.randint(20000, 32700)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port between 20000 and 32700")


def broker_env(redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}
    env.pop("OPENAI_API_KEY", None)
    env.update(
        REDIS_URL=redis_url,
        BROKER_KEY_PREFIX=prefix,
        BROKER_AGENTS=TEST_AGENTS,
        BROKER_POLL_DELAY_S="0.5",
        # open unless a test turns auth on with BROKER_AUTH="on" and BROKER_API_KEYS
        BROKER_AUTH="off",
        BROKER_RECEIPT_KEYS=RECEIPT_KEYS,
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


class Proc:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self._log = open(log, "wb")
        self.p = subprocess.Popen(
            [sys.executable, "-m", "broker.cli", *args],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self._log.close()

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        self.p.kill()
        self.p.wait(5)
        self._log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


class Broker:
    """An API process plus worker processes sharing one Redis key prefix."""

    def __init__(self, redis_url: str, prefix: str, logdir: Path, **extra_env: str) -> None:
        self.env = broker_env(redis_url, prefix, **extra_env)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.logdir = logdir
        self.api: Proc | None = None
        self.workers: list[Proc] = []

    def start_api(self) -> None:
        self.api = Proc(
            ["api", "--port", str(self.port)], self.env, self.logdir / f"api-{self.port}.log"
        )
        wait_until(lambda: _get(self.url + "/healthz") == 200, "API to answer", self.api)

    def start_worker(self, *args: str, **env: str) -> Proc:
        """A worker process; ``args`` follow ``broker worker`` (``--log-level debug``)."""
        n = len(self.workers)
        log = self.logdir / f"worker-{self.port}-{n}.log"
        w = Proc(["worker", *args], {**self.env, **env}, log)
        self.workers.append(w)
        return w

    def wait_ready(self) -> None:
        wait_until(lambda: _get(self.url + "/readyz") == 200, "a worker heartbeat", self.api)

    @contextlib.contextmanager
    def serving(self) -> Iterator[Broker]:
        """A worker and the API, ready; afterwards stopped and their keys deleted."""
        try:
            self.start_worker()
            self.start_api()
            self.wait_ready()
            yield self
        finally:
            self.stop()
            delete_prefix(self.env["REDIS_URL"], self.env["BROKER_KEY_PREFIX"])

    def stop(self) -> None:
        for w in self.workers:
            w.stop()
        if self.api:
            self.api.stop()


def delete_prefix(redis_url: str, prefix: str) -> None:
    """Deletes every key under ``prefix``."""
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])
    finally:
        client.close()


def _get(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def wait_until(
    cond: Callable[[], Any], what: str, proc: Proc | None = None, deadline_s: float = DEADLINE_S
) -> Any:
    """Polls ``cond`` until it is truthy; fails with the process log if it never is."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = cond()
        if value:
            return value
        if proc is not None and proc.p.poll() is not None:
            raise AssertionError(f"process exited while waiting for {what}:\n{proc.output()}")
        time.sleep(0.02)
    extra = f"\n{proc.output()[-4000:]}" if proc is not None else ""
    raise AssertionError(f"gave up waiting for {what}{extra}")
