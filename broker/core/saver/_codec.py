"""Encoding helpers and the key-tracking script of the Redis checkpoint saver."""

from __future__ import annotations

import json
from typing import Any, NoReturn

from langchain_core.runnables import RunnableConfig

from broker.core.fence import CONFIG_KEY as FENCE_CONFIG_KEY
from broker.core.fence import Fence

_PAGE = 100

# Adds the keys just written to the thread's key index and gives them the index's remaining
# TTL, so keys written after aexpire_thread still expire together with the rest of the thread.
# KEYS: key index, thread registry, ...; ARGV: thread id, ...
_TRACK_FN = """
local function track(written)
  local ttl = redis.call('PTTL', KEYS[1])
  local score = 'inf'
  if ttl > 0 then
    local now = redis.call('TIME')
    score = now[1] * 1000 + math.floor(now[2] / 1000) + ttl
  end
  for _, key in ipairs(written) do
    redis.call('SADD', KEYS[1], key)
    if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
  end
  redis.call('ZADD', KEYS[2], score, ARGV[1])
end
"""

# KEYS: key index, thread registry, written keys...; ARGV: thread id.
_TRACK = (
    _TRACK_FN
    + """
local written = {}
for i = 3, #KEYS do table.insert(written, KEYS[i]) end
track(written)
"""
)

# The attempt's fence (broker/core/fence.py), when the config carries one: the fence key
# is the KEYS entry after the script's own, the lease token the last ARGV. Returns 0
# (nothing written) once another holder has taken the thread.
_FENCE_FN = """
local function fenced(nkeys)
  return #KEYS > nkeys and redis.call('GET', KEYS[nkeys + 1]) ~= ARGV[#ARGV]
end
"""

# One checkpoint in one step. KEYS: 1 key index, 2 thread registry, 3 namespaces,
# 4 checkpoint index, 5 checkpoint row, 6 blobs, 7 the run's checkpoints, [8 fence].
# ARGV: 1 thread id, 2 namespace, 3 checkpoint id, 4 run entry ('' when none),
# 5 row field count, row fields and values, then blob count, blob fields and values,
# [lease token]. Returns 1, or 0 when fenced.
_PUT = (
    _TRACK_FN
    + _FENCE_FN
    + """
if fenced(7) then return 0 end
local i = 6
local nrow = tonumber(ARGV[5])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('ZADD', KEYS[4], 0, ARGV[3])
redis.call('DEL', KEYS[5])  -- a repeated put replaces the whole row
redis.call('HSET', KEYS[5], unpack(ARGV, i, i + 2 * nrow - 1))
i = i + 2 * nrow
local nblob = tonumber(ARGV[i])
local written = {KEYS[3], KEYS[4], KEYS[5]}
if nblob > 0 then
  redis.call('HSET', KEYS[6], unpack(ARGV, i + 1, i + 2 * nblob))
  table.insert(written, KEYS[6])
end
if ARGV[4] ~= '' then
  redis.call('SADD', KEYS[7], ARGV[4])
  table.insert(written, KEYS[7])
end
track(written)
return 1
"""
)

# A task's writes in one step: a retried task does not change writes already saved;
# special channels (errors, interrupts, resumes) keep only their latest value.
# KEYS: 1 key index, 2 thread registry, 3 writes, [4 fence]; ARGV: 1 thread id, 2 kept
# count, kept fields and values, then replaced count, replaced fields and values, [lease
# token]. Returns 1, or 0 when fenced.
_PUT_WRITES = (
    _TRACK_FN
    + _FENCE_FN
    + """
if fenced(3) then return 0 end
local nkept = tonumber(ARGV[2])
for j = 0, nkept - 1 do redis.call('HSETNX', KEYS[3], ARGV[3 + 2 * j], ARGV[4 + 2 * j]) end
local i = 3 + 2 * nkept
local nrep = tonumber(ARGV[i])
if nrep > 0 then redis.call('HSET', KEYS[3], unpack(ARGV, i + 1, i + 2 * nrep)) end
track({KEYS[3]})
return 1
"""
)


def _pairs(mapping: dict[str, bytes]) -> list[str | bytes]:
    """A mapping as the flat field, value list a script's ARGV carries."""
    return [x for kv in mapping.items() for x in kv]


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


def _fence(config: RunnableConfig, keys: list[str], args: list[Any]) -> Fence | None:
    """Appends the config's fence, if it has one, to a script's keys and args."""
    fence = config["configurable"].get(FENCE_CONFIG_KEY)
    if isinstance(fence, Fence):
        keys.append(fence.key)
        args.append(fence.token)
        return fence
    return None


def _target(config: RunnableConfig) -> tuple[str, str, str | None]:
    conf = config["configurable"]
    return str(conf["thread_id"]), conf.get("checkpoint_ns") or "", conf.get("checkpoint_id")


def _async_only(method: str) -> NoReturn:
    raise NotImplementedError(
        f"RedisCheckpointSaver is async only: use `await checkpointer.{method}(...)`, "
        "and run graphs with `await graph.ainvoke(...)` / `graph.astream(...)`."
    )
