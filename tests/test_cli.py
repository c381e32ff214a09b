"""The ``broker`` command as real processes: production entry points and ``broker dev``."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

pytestmark = pytest.mark.slow

# Bounds on polling, not expectations: no test asserts how long anything took.
STARTUP_DEADLINE_S = 120.0
STOP_DEADLINE_S = 60.0

BROKER = Path(sys.executable).with_name("broker")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "BROKER_REDIS_URL")}
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    # An exited process its parent has not collected yet is no longer running.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Dev:
    """A running ``broker dev`` whose output is collected line by line."""

    def __init__(self, cwd: Path, env: dict[str, str], *args: str) -> None:
        self.port = _free_port()
        argv = [sys.executable, "-m", "broker.cli", "dev", "--port", str(self.port), *args]
        self.process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.pids: dict[str, int] = {}
        self.banner: dict[str, str] = {}

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for_banner(self) -> None:
        """Wait until the startup banner lists the child PIDs, then parse it."""
        deadline = time.monotonic() + STARTUP_DEADLINE_S
        while not any(line.strip().startswith("PIDs") for line in self.lines):
            if self.process.poll() is not None:
                self._reader.join(timeout=5)
                pytest.fail(f"broker dev exited with {self.process.returncode}:\n{self.output}")
            if time.monotonic() > deadline:
                pytest.fail(f"broker dev printed no banner:\n{self.output}")
            time.sleep(0.1)
        for line in self.lines:
            match = re.match(r"\s+(API|Docs|Redis|PIDs)\s+(.*)", line)
            if match:
                self.banner[match[1]] = match[2].strip()
        self.pids = {k: int(v) for k, v in re.findall(r"([\w-]+)=(\d+)", self.banner["PIDs"])}

    def stop(self, sig: int = signal.SIGINT) -> int:
        self.process.send_signal(sig)
        return self.wait()

    def wait(self) -> int:
        code = self.process.wait(timeout=STOP_DEADLINE_S)
        self._reader.join(timeout=STOP_DEADLINE_S)
        return code

    def cleanup(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        # Never leave a stray server or worker behind, even when a test failed midway.
        for pid in self.pids.values():
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        self._reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def start_dev(tmp_path: Path) -> Iterator[Callable[..., Dev]]:
    started: list[Dev] = []

    def start(env: dict[str, str], *args: str) -> Dev:
        dev = Dev(tmp_path, env, *args)
        started.append(dev)
        return dev

    yield start
    for dev in started:
        dev.cleanup()


def _wait_status(url: str, status: int = 200) -> httpx.Response:
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    while True:
        try:
            response = httpx.get(url, timeout=5)
            if response.status_code == status:
                return response
        except httpx.TransportError:
            response = None
        if time.monotonic() > deadline:
            pytest.fail(f"{url} never answered {status}; last: {response}")
        time.sleep(0.2)


# Production entry points


@pytest.mark.parametrize("command", ["api", "worker"])
def test_production_commands_refuse_to_start_without_redis_url(
    command: str, tmp_path: Path
) -> None:
    result = subprocess.run(
        [str(BROKER), command],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=STOP_DEADLINE_S,
    )
    assert result.returncode == 2
    assert "REDIS_URL" in result.stderr


# broker dev


def test_dev_with_an_embedded_server_serves_and_stops_everything_on_sigint(
    start_dev: Callable[..., Dev], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    dev = start_dev(_env(), "--data-dir", str(data_dir))
    dev.wait_for_banner()

    base = f"http://127.0.0.1:{dev.port}"
    assert dev.banner["API"] == base
    assert dev.banner["Docs"] == f"{base}/docs"
    assert "embedded" in dev.banner["Redis"]
    assert "Auth    OFF: anyone on this machine" in dev.output  # open, and says so
    assert set(dev.pids) == {"api", "worker", "embedded-redis", "valkey-server"}
    assert all(_alive(pid) for pid in dev.pids.values())

    redis_url = dev.banner["Redis"].split()[0]
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping()
        assert int(client.info("server")["process_id"]) == dev.pids["valkey-server"]
    finally:
        client.close()

    response = httpx.get(f"{base}/healthz", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    _wait_status(f"{base}/readyz")

    assert dev.stop(signal.SIGINT) == 0
    assert [name for name, pid in dev.pids.items() if _alive(pid)] == []
    assert (data_dir / "appendonlydir").is_dir()


def test_dev_restart_keeps_the_embedded_data(start_dev: Callable[..., Dev], tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key, value = f"ibtest:{uuid.uuid4().hex}", "survives a restart"

    first = start_dev(_env(), "--data-dir", str(data_dir))
    first.wait_for_banner()
    client = redis.Redis.from_url(first.banner["Redis"].split()[0])
    try:
        client.set(key, value)
    finally:
        client.close()
    assert first.stop(signal.SIGTERM) == 0

    second = start_dev(_env(), "--data-dir", str(data_dir))
    second.wait_for_banner()
    client = redis.Redis.from_url(second.banner["Redis"].split()[0], decode_responses=True)
    try:
        assert client.get(key) == value
    finally:
        client.close()
    assert second.stop() == 0


@pytest.mark.parametrize(
    ("victim", "reported"), [("worker", "worker"), ("valkey-server", "embedded-redis")]
)
def test_dev_stops_everything_when_a_child_dies(
    start_dev: Callable[..., Dev], tmp_path: Path, victim: str, reported: str
) -> None:
    dev = start_dev(_env(), "--data-dir", str(tmp_path / "data"))
    dev.wait_for_banner()

    os.kill(dev.pids[victim], signal.SIGKILL)

    assert dev.wait() == 1
    assert f"{reported} exited" in dev.output
    assert [name for name, pid in dev.pids.items() if _alive(pid)] == []


def test_dev_refuses_a_data_dir_another_dev_uses(
    start_dev: Callable[..., Dev], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    first = start_dev(_env(), "--data-dir", str(data_dir))
    first.wait_for_banner()

    second = start_dev(_env(), "--data-dir", str(data_dir))
    assert second.wait() == 1
    assert f"(pid {first.pids['valkey-server']}) still uses" in second.output

    assert first.stop() == 0


def test_dev_children_stop_when_dev_itself_is_killed(
    start_dev: Callable[..., Dev], tmp_path: Path
) -> None:
    dev = start_dev(_env(), "--data-dir", str(tmp_path / "data"))
    dev.wait_for_banner()

    # SIGKILL leaves `broker dev` no chance to stop its children: they notice it is gone.
    dev.process.kill()
    dev.wait()

    deadline = time.monotonic() + STOP_DEADLINE_S
    while alive := [name for name, pid in dev.pids.items() if _alive(pid)]:
        if time.monotonic() > deadline:
            pytest.fail(f"still running after broker dev was killed: {alive}")
        time.sleep(0.2)


def test_dev_uses_redis_url_and_starts_no_embedded_server(
    start_dev: Callable[..., Dev], tmp_path: Path, redis_url: str
) -> None:
    data_dir = tmp_path / "data"
    dev = start_dev(_env(REDIS_URL=redis_url), "--data-dir", str(data_dir))
    dev.wait_for_banner()

    assert dev.banner["Redis"].split()[0] == redis_url
    assert "from REDIS_URL" in dev.banner["Redis"]
    assert set(dev.pids) == {"api", "worker"}
    assert not data_dir.exists()

    base = f"http://127.0.0.1:{dev.port}"
    assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
    _wait_status(f"{base}/readyz")

    assert dev.stop() == 0
    assert [name for name, pid in dev.pids.items() if _alive(pid)] == []


def test_dev_refuses_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "broker.cli", "dev", "--port", str(port)],
            cwd=tmp_path,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=STOP_DEADLINE_S,
        )
    assert result.returncode == 1
    assert f"port {port} is in use" in result.stderr
    assert not (tmp_path / ".broker-data").exists()
