"""``broker dev``: the API, one worker and, when ``REDIS_URL`` is unset, an embedded
Redis-compatible server, each supervised as a child process in a session of its own.

It stops them all, the server last, on Ctrl-C, SIGTERM, SIGHUP, or when any of them exits.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from types import FrameType

from broker.core.settings import get_settings

DEV_ENV = "BROKER_DEV"
"""Set to ``1`` in the environment of the processes ``broker dev`` starts."""
PARENT_ENV = "BROKER_DEV_PARENT"
"""The process id of the ``broker dev`` that started this process."""

# How long `broker dev` waits for a child to stop before it kills the child's group;
# longer than the API's own limit, so the API gets to close its streams first.
STOP_GRACE_S = 15.0
POLL_S = 0.2


def stop_with_parent() -> None:
    """In a child of ``broker dev``, send this process SIGTERM once ``broker dev`` is gone.

    ``broker dev`` stops its children itself, unless it is killed with SIGKILL; this keeps
    them from outliving it then, holding the port and the data dir.
    """
    parent = os.getppid()
    if os.environ.get(PARENT_ENV) != str(parent):
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="stop-with-parent", daemon=True).start()


@dataclass
class _Child:
    name: str
    process: subprocess.Popen[bytes]


class _Signals:
    """Counts stop signals; handlers only record, the supervisor loop acts."""

    def __init__(self) -> None:
        self.count = 0

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1


def run(args: argparse.Namespace) -> int:
    """Runs ``broker dev`` until a stop signal or a child's exit; returns the exit code."""
    signals = _Signals()
    signals.install()
    redis_url = get_settings().redis_url
    if _port_taken(args.host, args.port):
        print(f"broker dev: port {args.port} is in use; pass --port", file=sys.stderr)
        return 1

    env = {**os.environ, DEV_ENV: "1", PARENT_ENV: str(os.getpid()), "PYTHONUNBUFFERED": "1"}
    # open by default, which is only safe on loopback
    env.setdefault("BROKER_AUTH", "off")
    auth_off = env["BROKER_AUTH"] == "off"
    if auth_off and not _loopback(args.host):
        print(
            f"broker dev: refusing to serve {args.host} without authentication; bind to "
            "127.0.0.1, or set BROKER_AUTH=on and BROKER_API_KEYS",
            file=sys.stderr,
        )
        return 2
    base = f"http://{_display_host(args.host)}:{args.port}"
    env.setdefault("BROKER_PUBLIC_URL", base)
    children: list[_Child] = []
    server: _Child | None = None
    try:
        if redis_url:
            redis_note = "from REDIS_URL"
        else:
            argv = [sys.executable, "-m", "broker._embedded", "--data-dir", str(args.data_dir)]
            server = _Child("embedded-redis", _spawn(argv, env, stdout=subprocess.PIPE))
            handshake = _read_handshake(server)
            if handshake is None:
                return 1
            redis_url, server_pid = handshake
            redis_note = f"embedded Valkey, data in {args.data_dir.resolve()}"
        env["REDIS_URL"] = redis_url

        cli = [sys.executable, "-m", "broker.cli"]
        api_argv = [*cli, "api", "--host", args.host, "--port", str(args.port)]
        children.append(_Child("api", _spawn(api_argv, env)))
        children.append(_Child("worker", _spawn([*cli, "worker"], env)))
        watched = children + ([server] if server else [])

        if not _wait_ready(f"{base}/healthz", watched, signals):
            return _exit_code(watched, signals)

        auth_note = (
            "OFF: anyone on this machine can read and answer everything (development only)"
            if auth_off
            else "API keys required"
        )
        pids = " ".join(f"{c.name}={c.process.pid}" for c in watched)
        if server:
            pids += f" valkey-server={server_pid}"
        print(
            "\nbroker dev is running\n"
            f"  Inbox   {base}/  (the dashboard)\n"
            f"  API     {base}\n"
            f"  Docs    {base}/docs\n"
            f"  Redis   {_redacted(redis_url)}  ({redis_note})\n"
            f"  Auth    {auth_note}\n"
            f"  PIDs    {pids}\n"
            "Press Ctrl-C to stop.\n",
            flush=True,
        )
        while not signals.count and _first_exited(watched) is None:
            time.sleep(POLL_S)
        if signals.count:
            print("broker dev: stopping", file=sys.stderr, flush=True)
        return _exit_code(watched, signals, server, server_pid if server else None)
    finally:
        # The API and the worker stop before the server they write to.
        _stop(children, signals)
        if server:
            _stop([server], signals)


def _spawn(
    argv: list[str], env: dict[str, str], stdout: int | None = None
) -> subprocess.Popen[bytes]:
    # A session of its own: a terminal's Ctrl-C reaches only `broker dev`, which then stops
    # the children in order, and killing the session's group also takes any grandchild.
    return subprocess.Popen(argv, env=env, stdout=stdout, start_new_session=True)


def _read_handshake(server: _Child) -> tuple[str, int] | None:
    assert server.process.stdout is not None
    # One line once the server answers PING; end of file if it could not start.
    line = server.process.stdout.readline()
    server.process.stdout.close()
    if not line:
        return None
    info = json.loads(line)
    return str(info["url"]), int(info["pid"])


def _wait_ready(url: str, watched: list[_Child], signals: _Signals) -> bool:
    while not signals.count and _first_exited(watched) is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(POLL_S)
    return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _first_exited(children: list[_Child]) -> _Child | None:
    for child in children:
        if child.process.poll() is not None:
            return child
    return None


def _exit_code(
    watched: list[_Child],
    signals: _Signals,
    server: _Child | None = None,
    server_pid: int | None = None,
) -> int:
    exited = _first_exited(watched)
    if exited is None or signals.count:
        return 0
    how = f"with code {exited.process.returncode}"
    if server is not None and server_pid is not None and not _pid_alive(server_pid):
        # a dead Redis takes the API or worker down with it: name the cause
        exited, how = server, f"(valkey-server {server_pid} is gone)"
    print(f"broker dev: {exited.name} exited {how}; stopping", file=sys.stderr, flush=True)
    return 1


def _stop(children: list[_Child], signals: _Signals) -> None:
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    # A second Ctrl-C skips the grace period.
    seen = signals.count
    for child in children:
        while child.process.poll() is None:
            if time.monotonic() > deadline or signals.count > seen:
                break
            time.sleep(POLL_S / 4)
    for child in children:
        try:
            os.killpg(child.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        child.process.wait()


def _port_taken(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _redacted(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _display_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host
