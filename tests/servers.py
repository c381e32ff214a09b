"""redis-server processes of a test's own, for tests that kill, stall, fill, fail over
or reconfigure Redis (never the shared server the rest of the suite uses)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import redis
import redis.asyncio as aioredis

from tests.harness import free_port, wait_until


async def commands_run(r: aioredis.Redis) -> int:
    """Commands the server has run, those inside scripts included (INFO commandstats),
    INFO itself left out."""
    stats = await r.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


class RedisServer:
    """One ``redis-server`` on a free loopback port, its files in ``workdir``.

    ``aof`` persists every write (appendfsync always), so a crash loses nothing;
    ``args`` are passed on as they are (``--tls-port``, ``--replicaof`` …).
    """

    def __init__(
        self, workdir: Path, *, aof: bool = False, args: tuple[str, ...] = (), tls: bool = False
    ) -> None:
        self.port = free_port()
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.aof = aof
        self.args = args
        self.tls = tls
        scheme = "rediss" if tls else "redis"
        self.url = f"{scheme}://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        port = (
            ["--port", "0", "--tls-port", str(self.port)]
            if self.tls
            else ["--port", str(self.port)]
        )
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.aof else []
        return [
            "redis-server",
            *port,
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--save",
            "",
            *persistence,
            *self.args,
        ]

    def client(self, **options: object) -> redis.Redis:
        return redis.Redis.from_url(self.url, **options)  # type: ignore[arg-type]

    def start(self) -> RedisServer:
        with open(self.dir / "redis.log", "ab") as log:
            self.proc = subprocess.Popen(self.command(), cwd=self.dir, stdout=log)
        if not self.tls:
            wait_until(self.answers, f"redis-server on {self.port} to start")
        return self

    def answers(self) -> bool:
        try:
            client = self.client(socket_timeout=1)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except redis.RedisError:
            return False

    def crash(self) -> None:
        """SIGKILL: whatever is not in the append-only file is gone."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def pause(self) -> None:
        """SIGSTOP: the server keeps its connections and answers nothing."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
