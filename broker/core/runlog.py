"""A run's event log: a Redis list of ``<event id> <event JSON>`` entries, oldest first.

The transition scripts append each event to the global stream and, under the same id, to
its run's log (``emit`` in broker/core/store/_prelude.py). A list, not a stream, so a
run's history costs its entries and little else: Redis gives every new stream a
pre-allocated node of several kilobytes, which for a run of a handful of events was
most of the memory a pending interrupt held.

Ids are stream ids and only grow, so the entries after a cursor are a tail of the list:
reading them walks back from the newest in chunks, never over the older ones.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis

from broker.core.codec import loads

CHUNK = 64


def _id(eid: str) -> tuple[int, int]:
    ms, _, seq = eid.partition("-")
    return int(ms), int(seq or 0)


async def entries(
    r: aioredis.Redis, key: str, since: str = "0"
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """The events of the log after id ``since`` ("0": all), oldest first."""
    if since in ("0", "0-0", ""):
        raw = await r.lrange(key, 0, -1)
    else:
        floor, raw, end = _id(since), [], -1
        while True:
            chunk = await r.lrange(key, end - CHUNK + 1, end)
            raw = chunk + raw
            if len(chunk) < CHUNK or _id(_text(chunk[0]).partition(" ")[0]) <= floor:
                break
            end -= CHUNK
        raw = [e for e in raw if _id(_text(e).partition(" ")[0]) > floor]
    for entry in raw:
        eid, _, event = _text(entry).partition(" ")
        yield eid, loads(event)


async def last_id(r: aioredis.Redis, key: str) -> str:
    """The id of the newest event in the log, or "0" when it has none."""
    newest = await r.lindex(key, -1)
    return _text(newest).partition(" ")[0] if newest else "0"


def _text(entry: str | bytes) -> str:
    return entry.decode() if isinstance(entry, bytes) else entry
