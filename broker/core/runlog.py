"""A run's event log: a Redis list of ``<event id> <event JSON>`` entries, oldest first.

The transition scripts append each event to the global stream and, under the same id, to
its run's log (``emit`` in broker/core/store/_prelude.py). A list, not a stream, so a
run's history costs its entries and little else: Redis gives every new stream a
pre-allocated node of several kilobytes, which for a run of a handful of events was
most of the memory a pending interrupt held.

Ids are stream ids and only grow, so the entries after a cursor are a tail of the list:
reading them walks back from the newest in chunks, never over the older ones. The walk
is one script: the log grows at its end and is trimmed at its start meanwhile, so list
indices read in separate calls would not line up.

An entry leaves out the run, thread and agent ids, the same for every entry of a log:
the reader is given them (``Owner``) and puts them back, so an event read from the log
is the event the global stream holds. Entries written before that carry them and are
read as they are.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import redis.asyncio as aioredis

from broker.core.codec import loads

CHUNK = 64

# The log's entries from the newest one at or before the cursor on (the caller drops
# that one). Walks back from the newest entry a chunk at a time, looking at one entry a
# chunk. KEYS: 1 log; ARGV: 1-2 the cursor's ms and seq, 3 chunk.
TAIL = """
local at = redis.call('LLEN', KEYS[1])
local fms, fseq, chunk = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
while at > 0 do
  at = math.max(at - chunk, 0)
  local ms, seq = string.match(redis.call('LINDEX', KEYS[1], at), '^(%d+)-(%d+)')
  ms, seq = tonumber(ms), tonumber(seq)
  if ms == nil or ms < fms or (ms == fms and seq <= fseq) then break end
end
return redis.call('LRANGE', KEYS[1], at, -1)
"""


class Owner(NamedTuple):
    """The run a log belongs to, whose ids every one of its events carries."""

    run_id: str
    thread_id: str
    agent_id: str


def event(raw: str, owner: Owner) -> dict[str, Any]:
    """The event of a log entry's JSON, with its run's ids."""
    stored: dict[str, Any] = loads(raw)
    if "run_id" in stored:
        return stored
    return {
        "type": stored["type"],
        "ts": stored["ts"],
        "run_id": owner.run_id,
        "thread_id": owner.thread_id,
        "agent_id": owner.agent_id,
        "data": stored["data"],
    }


def _id(eid: str) -> tuple[int, int]:
    ms, _, seq = eid.partition("-")
    return int(ms), int(seq or 0)


async def entries(
    r: aioredis.Redis, key: str, owner: Owner, since: str = "0"
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """The events of ``owner``'s log after id ``since`` ("0": all), oldest first."""
    if since in ("0", "0-0", ""):
        raw = await r.lrange(key, 0, -1)
    else:
        floor = _id(since)
        # one atomic read: the log grows and is trimmed while a reader walks it
        tail = await r.register_script(TAIL)(keys=[key], args=[floor[0], floor[1], CHUNK])
        raw = [e for e in tail if _id(_text(e).partition(" ")[0]) > floor]
    for entry in raw:
        eid, _, raw_event = _text(entry).partition(" ")
        yield eid, event(raw_event, owner)


async def last_id(r: aioredis.Redis, key: str) -> str:
    """The id of the newest event in the log, or "0" when it has none."""
    newest = await r.lindex(key, -1)
    return _text(newest).partition(" ")[0] if newest else "0"


def _text(entry: str | bytes) -> str:
    return entry.decode() if isinstance(entry, bytes) else entry
