"""Encoding helpers and the key-tracking script of the Redis checkpoint saver."""

from __future__ import annotations

import json
from typing import Any, NoReturn

from langchain_core.runnables import RunnableConfig

_PAGE = 100

# Adds the keys just written to the thread's key index and gives them the index's remaining
# TTL, so keys written after aexpire_thread still expire together with the rest of the thread.
# KEYS: key index, thread registry, written keys...; ARGV: thread id.
_TRACK = """
local ttl = redis.call('PTTL', KEYS[1])
local score = 'inf'
if ttl > 0 then
  local now = redis.call('TIME')
  score = now[1] * 1000 + math.floor(now[2] / 1000) + ttl
end
for i = 3, #KEYS do
  redis.call('SADD', KEYS[1], KEYS[i])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[i], ttl) end
end
redis.call('ZADD', KEYS[2], score, ARGV[1])
"""


def _pack(header: list[Any], data: bytes) -> bytes:
    # json.dumps escapes newlines, so the first b"\n" always ends the header.
    return json.dumps(header).encode() + b"\n" + data


def _unpack(raw: bytes) -> tuple[list[Any], bytes]:
    header, _, data = raw.partition(b"\n")
    return json.loads(header), data


def _field(*parts: Any) -> str:
    return json.dumps(parts)


_EMPTY = _pack(["empty"], b"")


def _config(thread_id: str, ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": ns,
            "checkpoint_id": checkpoint_id,
        }
    }


def _target(config: RunnableConfig) -> tuple[str, str, str | None]:
    conf = config["configurable"]
    return str(conf["thread_id"]), conf.get("checkpoint_ns") or "", conf.get("checkpoint_id")


def _async_only(method: str) -> NoReturn:
    raise NotImplementedError(
        f"RedisCheckpointSaver is async only: use `await checkpointer.{method}(...)`, "
        "and run graphs with `await graph.ainvoke(...)` / `graph.astream(...)`."
    )
