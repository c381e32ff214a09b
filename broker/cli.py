"""The ``broker`` command: ``api`` and ``worker`` for production, ``dev`` for local use.

``broker dev`` supervises the API, one worker and, when ``REDIS_URL`` is unset, an
embedded Redis-compatible server, each as a child process in a session of its own. It
stops them all, the server last, on Ctrl-C, SIGTERM, SIGHUP, or when any of them exits.
"""

from __future__ import annotations

import argparse
import copy
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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from broker.settings import Settings, get_settings

DEV_ENV = "BROKER_DEV"
"""Set to ``1`` in the environment of the processes ``broker dev`` starts."""
PARENT_ENV = "BROKER_DEV_PARENT"
"""The process id of the ``broker dev`` that started this process."""

# Long-lived streams (SSE, WebSocket) would otherwise hold a stopping API open forever.
GRACEFUL_SHUTDOWN_S = 10
# How long `broker dev` waits for a child to stop before it kills the child's group;
# longer than the API's own limit, so the API gets to close its streams first.
STOP_GRACE_S = 15.0
POLL_S = 0.2
LOG_LEVELS = ("debug", "info", "warning", "error")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``broker``; deployment tests validate commands with it."""
    parser = argparse.ArgumentParser(
        prog="broker", description="Interrupt broker: durable, shared LangGraph interrupts."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    api = commands.add_parser("api", help="serve the HTTP API (needs REDIS_URL)")
    api.add_argument("--host", help="bind address (default: BROKER_HOST or 127.0.0.1)")
    api.add_argument("--port", type=int, help="port (default: BROKER_PORT or 8000)")
    api.add_argument("--workers", type=int, default=1, help="uvicorn processes (default: 1)")
    worker = commands.add_parser(
        "worker", help="run a worker that executes agent runs (needs REDIS_URL)"
    )
    for command in (api, worker):
        command.add_argument("--log-level", choices=LOG_LEVELS, default="info")

    dev = commands.add_parser(
        "dev",
        help="run the API and a worker locally, with an embedded Redis unless REDIS_URL is set",
    )
    dev.add_argument("--host", default="127.0.0.1", help="API bind address (default: 127.0.0.1)")
    dev.add_argument("--port", type=int, default=8000, help="API port (default: 8000)")
    dev.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".broker-data"),
        help="where the embedded Redis keeps its append-only file (default: ./.broker-data)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``broker`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "dev":
        return _dev(args)
    try:
        settings = get_settings()
        settings.require_redis_url()
        _check_config(args.command, settings)
    except (RuntimeError, ValueError) as exc:
        print(f"broker {args.command}: {exc}", file=sys.stderr)
        return 2
    if args.command == "api":
        return _api(args, settings)
    return _worker(args, settings)


def _check_config(command: str, settings: Settings) -> None:
    """Raises ValueError, naming the fix, for configuration the process must not run with."""
    from broker import auth, expiry, links, webhooks

    keyring = auth.KeyRing.from_settings(settings)
    links.secret_key(settings)
    webhooks.configured(settings)
    expiry.rules(settings.expiry)
    if command == "api" and keyring.enabled and not keyring.keys:
        raise ValueError(
            "no API keys are configured, and without keys nobody could use the API. "
            "Set BROKER_API_KEYS (or BROKER_API_KEYS_FILE) to a JSON list such as "
            '[{"id": "ops", "key_sha256": "<sha256 hex of the key>", "scopes": ["admin"]}], '
            "or set BROKER_AUTH=off to serve without authentication (trusted networks only)."
        )


def _api(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    stop_with_parent()
    uvicorn.run(
        "broker.app:create_app",
        factory=True,
        host=args.host if args.host is not None else settings.host,
        port=args.port if args.port is not None else settings.port,
        workers=args.workers,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        # A dict, not a call made here, so every uvicorn worker process applies it too.
        log_config=_log_config(args.log_level, uvicorn.config.LOGGING_CONFIG),
        log_level=args.log_level,
    )
    return 0


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio
    import logging.config

    from worker.main import run_worker

    logging.config.dictConfig(_log_config(args.log_level))
    stop_with_parent()
    try:
        asyncio.run(run_worker(settings))
    except asyncio.CancelledError:
        # arq stops on SIGINT/SIGTERM by cancelling its main task; arq's own runner
        # swallows this error the same way.
        pass
    except KeyboardInterrupt:
        return 130
    return 0


def _log_config(level: str, base: dict[str, Any] | None = None) -> dict[str, Any]:
    # The project's loggers and arq's, which print nothing unless configured, as arq's
    # own command line configures them.
    config: dict[str, Any] = (
        copy.deepcopy(base) if base else {"version": 1, "disable_existing_loggers": False}
    )
    config.setdefault("formatters", {})["broker"] = {
        "format": "%(asctime)s %(levelname)s %(name)s: %(message)s"
    }
    config.setdefault("handlers", {})["broker"] = {
        "class": "logging.StreamHandler",
        "formatter": "broker",
        "stream": "ext://sys.stderr",
    }
    # credentials that ride in URLs (?api_key=, action link tokens) stay out of the logs
    config.setdefault("filters", {})["redact"] = {"()": "broker.gate.RedactCredentials"}
    for handler in config["handlers"].values():
        handler["filters"] = [*handler.get("filters", []), "redact"]
    loggers = config.setdefault("loggers", {})
    for name in ("broker", "worker", "agent", "arq"):
        loggers[name] = {"handlers": ["broker"], "level": level.upper(), "propagate": False}
    return config


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


def _dev(args: argparse.Namespace) -> int:
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


if __name__ == "__main__":
    sys.exit(main())
