"""What a Redis server spent, from INFO: commands (those inside scripts too), network
bytes, CPU seconds and memory; and a follower of the event stream whose own share of
those is known, so it can be taken out.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from bench.commands import free_port, start


@contextlib.contextmanager
def own_redis() -> Iterator[str]:
    """A throwaway redis-server (no persistence) on a free loopback port."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
    argv += ["--save", "", "--appendonly", "no", "--dir", tempfile.mkdtemp()]
    with tempfile.NamedTemporaryFile(suffix=".log") as log:
        server = start(argv, dict(os.environ), Path(log.name), url)
        try:
            yield url
        finally:
            server.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(15)
            server.kill()


@dataclass
class Usage:
    """Counters of the server (or a difference of two readings)."""

    commands: dict[str, float] = field(default_factory=dict)
    net_in: float = 0
    net_out: float = 0
    cpu_s: float = 0

    def __sub__(self, other: Usage) -> Usage:
        names = set(self.commands) | set(other.commands)
        cmds = {c: self.commands.get(c, 0) - other.commands.get(c, 0) for c in names}
        return Usage(
            cmds,
            self.net_in - other.net_in,
            self.net_out - other.net_out,
            self.cpu_s - other.cpu_s,
        )

    def __add__(self, other: Usage) -> Usage:
        return self - other.scaled(-1)

    def scaled(self, k: float) -> Usage:
        cmds = {c: n * k for c, n in self.commands.items()}
        return Usage(cmds, self.net_in * k, self.net_out * k, self.cpu_s * k)

    @property
    def total(self) -> float:
        return sum(self.commands.values())


async def usage(r: aioredis.Redis) -> Usage:
    """One reading; the INFO command itself is left out of the command counts."""
    info = await r.info("commandstats", "stats", "cpu")  # one command, one reply
    cmds: dict[str, float] = {
        name.removeprefix("cmdstat_"): int(v["calls"])
        for name, v in info.items()
        if name.startswith("cmdstat_") and name != "cmdstat_info"
    }
    return Usage(
        cmds,
        float(info["total_net_input_bytes"]),
        float(info["total_net_output_bytes"]),
        float(info["used_cpu_sys"]) + float(info["used_cpu_user"]),
    )


async def reading_cost(r: aioredis.Redis) -> Usage:
    """What one reading adds to the next (its own bytes and CPU), to take out."""
    first = await usage(r)
    return (await usage(r)) - first


async def used_memory(r: aioredis.Redis) -> int:
    return int((await r.info("memory"))["used_memory"])


def _bulk(b: Any) -> int:
    data = b if isinstance(b, bytes) else str(b).encode()
    return len(f"${len(data)}\r\n") + len(data) + 2


def _array(n: int) -> int:
    return len(f"*{n}\r\n")


def command_bytes(args: list[Any]) -> int:
    """Bytes of a command as RESP sends it."""
    return _array(len(args)) + sum(_bulk(a) for a in args)


def xread_reply_bytes(reply: Any) -> int:
    """Bytes of an XREAD reply (one stream, RESP2) from its parsed form."""
    if not reply:
        return len(b"*-1\r\n")
    total = _array(len(reply))
    for name, entries in reply:
        total += _array(2) + _bulk(name) + _array(len(entries))
        for eid, fields in entries:
            total += _array(2) + _bulk(eid) + _array(2 * len(fields))
            total += sum(_bulk(k) + _bulk(v) for k, v in fields.items())
    return total


class Follower:
    """Follows the global event stream and hands each run's events to whoever waits for
    them. Its own commands and bytes are counted as it sends and reads them."""

    def __init__(self, url: str, stream: str) -> None:
        self.r = aioredis.Redis.from_url(url)
        self.stream = stream
        self.runs: dict[str, asyncio.Queue[dict[str, Any]]] = collections.defaultdict(asyncio.Queue)
        self.calls: list[tuple[bytes, int]] = []  # (after id, entries read), for a replay
        self.own = Usage()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.r.ping()  # connected (and its hello sent) before anything is counted
        last = await self.r.xrevrange(self.stream, count=1)
        self._task = asyncio.create_task(self._follow(last[0][0] if last else b"0-0"))

    async def _follow(self, last: bytes) -> None:
        from broker.core.codec import loads

        while True:
            args: list[Any] = ["XREAD", "COUNT", 500, "BLOCK", 1000, "STREAMS", self.stream, last]
            reply = await self.r.execute_command(*args)
            self.own.commands["xread"] = self.own.commands.get("xread", 0) + 1
            self.own.net_in += command_bytes(args)
            self.own.net_out += xread_reply_bytes(reply)
            entries = reply[0][1] if reply else []
            self.calls.append((last, len(entries)))
            for eid, fields in entries:
                last = eid
                event = loads(fields[b"event"])
                self.runs[event["run_id"]].put_nowait(event)

    async def wait(self, run_id: str, *types: str) -> dict[str, Any]:
        """The run's next event of one of ``types`` (earlier ones of other types skipped)."""
        while True:
            event = await asyncio.wait_for(self.runs[run_id].get(), 60)
            if event["type"] in types:
                return event
            if event["type"] in ("run.failed", "run.cancelled"):
                raise RuntimeError(f"run {run_id}: {event}")

    async def replay(self) -> None:
        """The same reads again without blocking: what they cost the server in CPU."""
        for last, count in self.calls:
            await self.r.execute_command(
                "XREAD", "COUNT", max(count, 1), "STREAMS", self.stream, last
            )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.r.aclose()
