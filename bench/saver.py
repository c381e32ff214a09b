"""Redis commands and round trips of the checkpoint saver, per call and per approval cycle.

Starts a throwaway redis-server and counts, for each saver call, the commands the server
ran (INFO commandstats: commands inside scripts count too) and the round trips the client
made (a connection class that counts what it sends). Calls are measured on a fresh thread
and on one with ``--history`` checkpoints, with a fence in the config as the worker has.

The cycle is what the worker's saver does for one approval (the runner's order): read
the state, persist the thread, run the graph to its interrupt (durability "sync"), read
the state; then read, run the resume to the end, read, expire the thread. Redis CPU is
the server's used_cpu over the cycles; it is noisy on a shared machine.

    uv run python -m bench.saver [--history 200] [--cycles 20]
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypedDict

import redis.asyncio as aioredis
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt
from redis.asyncio.connection import Connection

from bench._meter import own_redis, reading_cost, usage
from broker.core.fence import CONFIG_KEY, Fence
from broker.core.keys import Keys
from broker.core.saver import RedisCheckpointSaver


class CountingConnection(Connection):
    """Counts every send: one per command, one per pipeline."""

    sends = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        CountingConnection.sends += 1
        await super().send_packed_command(command, check_health)


class _State(TypedDict):
    question: str
    answer: str


def _graph() -> Any:
    def ask(state: _State) -> dict[str, str]:
        return {"answer": interrupt({"question": state["question"]})}

    g = StateGraph(_State)
    g.add_node("ask", ask)
    g.add_edge(START, "ask")
    g.add_edge("ask", END)
    return g


async def counted(r: aioredis.Redis, call: Callable[[], Awaitable[Any]]) -> tuple[float, int]:
    """Commands the server ran and round trips the client made for ``call``."""
    own = await reading_cost(r)
    before, sends = await usage(r), CountingConnection.sends
    await call()
    sends = CountingConnection.sends - sends
    return ((await usage(r)) - before - own).total, sends


def _config(thread: str, fence: Fence, cid: str | None = None) -> Any:
    conf: dict[str, Any] = {"thread_id": thread, "checkpoint_ns": "", CONFIG_KEY: fence}
    if cid:
        conf["checkpoint_id"] = cid
    return {"configurable": conf, "metadata": {"run_id": "run-" + thread}}


async def per_call(r: aioredis.Redis, saver: RedisCheckpointSaver, keys: Keys, h: int) -> None:
    print(f"\nper call: commands (round trips), fresh thread vs one with {h} checkpoints")
    for thread, n in (("fresh", 0), ("long", h)):
        rows = await _calls(r, saver, Fence(keys.thread_fence(thread), "tok"), thread, n)
        print(f"  {thread} ({n} checkpoints before)")
        for name, (cmds, trips) in rows.items():
            print(f"    {name:<26} {cmds:>5.0f} commands {trips:>3} round trips")


async def _calls(
    r: aioredis.Redis, saver: RedisCheckpointSaver, fence: Fence, thread: str, n: int
) -> dict[str, tuple[float, int]]:
    await r.set(fence.key, "tok")
    parent = None
    for step in range(n):
        cp = empty_checkpoint()
        cp["channel_versions"] = {"x": f"{step + 1:032}.0", "y": f"{step + 1:032}.0"}
        cp["channel_values"] = {"x": step, "y": "v" * 50}
        md: Any = {"source": "loop", "step": step, "run_id": "run-" + thread}
        await saver.aput(_config(thread, fence, parent), cp, md, cp["channel_versions"])
        parent = cp["id"]
    last = empty_checkpoint()
    last["channel_versions"] = {"x": f"{n + 1:032}.0", "y": f"{n + 1:032}.0"}
    last["channel_values"] = {"x": n, "y": "w" * 50}
    meta: Any = {"source": "loop", "step": n, "run_id": "run-" + thread}
    cid = last["id"]

    async def put() -> None:
        await saver.aput(_config(thread, fence, parent), last, meta, last["channel_versions"])

    rows = {
        "aput": await counted(r, put),
        "aput_writes": await counted(
            r, lambda: saver.aput_writes(_config(thread, fence, cid), [("x", 1)], "task")
        ),
        "aget_tuple (latest)": await counted(
            r, lambda: saver.aget_tuple({"configurable": {"thread_id": thread}})
        ),
        "aget_tuple (by id)": await counted(
            r, lambda: saver.aget_tuple(_config(thread, fence, cid))
        ),
        "apersist_thread": await counted(r, lambda: saver.apersist_thread(thread)),
        "aexpire_thread": await counted(r, lambda: saver.aexpire_thread(thread, 3600)),
        "aput, thread expiring": await counted(r, put),
    }
    await saver.apersist_thread(thread)
    return rows


async def cycles(r: aioredis.Redis, saver: RedisCheckpointSaver, keys: Keys, n: int) -> None:
    graph = _graph().compile(checkpointer=saver)

    async def one(thread: str) -> None:
        fence = Fence(keys.thread_fence(thread), "tok")
        await r.set(fence.key, "tok")
        config: Any = {"configurable": {"thread_id": thread, CONFIG_KEY: fence}}
        config["metadata"] = {"run_id": "run-" + thread}
        await graph.aget_state(config)
        await saver.apersist_thread(thread)
        async for _ in graph.astream({"question": "ok?", "answer": ""}, config, durability="sync"):
            pass
        await graph.aget_state(config)
        await graph.aget_state(config)
        async for _ in graph.astream(Command(resume="yes"), config, durability="sync"):
            pass
        await graph.aget_state(config)
        await saver.aexpire_thread(thread, 3600)

    await one("warm-up")
    own = await reading_cost(r)
    threads = [f"cycle-{uuid.uuid4().hex[:8]}" for _ in range(n)]
    for t in threads:  # fences set outside the measurement
        await r.set(keys.thread_fence(t), "tok")
    before, sends = await usage(r), CountingConnection.sends
    for t in threads:
        await one(t)
    used = (await usage(r)) - before - own
    sends = CountingConnection.sends - sends - n  # less the fence SETs in one()
    cmds = used.total - n
    print(f"\nper approval cycle (mean of {n}): {cmds / n:.1f} saver commands, ")
    print(f"  {sends / n:.1f} round trips, {used.cpu_s / n * 1000:.2f} ms Redis CPU")
    top = sorted(used.commands.items(), key=lambda kv: -kv[1])[:12]
    print("  " + ", ".join(f"{c} {v / n:.1f}" for c, v in top))


async def main(args: argparse.Namespace) -> None:
    with own_redis() as url:
        r = aioredis.Redis.from_url(url, connection_class=CountingConnection)
        keys = Keys("bsaver")
        saver = RedisCheckpointSaver(r, keys)
        try:
            print(f"redis-server {(await r.info())['redis_version']}")
            await per_call(r, saver, keys, args.history)
            await cycles(r, saver, keys, args.cycles)
        finally:
            await r.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=200)
    parser.add_argument("--cycles", type=int, default=20)
    asyncio.run(main(parser.parse_args()))
