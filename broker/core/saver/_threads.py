"""Whole-thread operations of the Redis checkpoint saver: copy, delete, retention, prune.

Every key of a thread is listed in its key index, so none of these ever SCANs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from langgraph.checkpoint.base import ChannelVersions
from redis.asyncio.client import Pipeline

from broker.core.keys import Keys
from broker.core.saver._codec import _EMPTY, _field

# Expires (ARGV[2] ms) or persists (ARGV[2] empty) every key of a thread, and scores it in
# the thread registry. KEYS: 1 key index, 2 thread registry; ARGV: 1 thread id, 2 ttl,
# 3 registry score.
_RETENTION = """
local keys = redis.call('SMEMBERS', KEYS[1])
table.insert(keys, KEYS[1])
for _, key in ipairs(keys) do
  if ARGV[2] == '' then redis.call('PERSIST', key) else redis.call('PEXPIRE', key, ARGV[2]) end
end
redis.call('ZADD', KEYS[2], 'XX', ARGV[3], ARGV[1])
"""

# Deletes every key of a thread and its registry entry, in one step however many keys it
# has. KEYS: 1 key index, 2 thread registry; ARGV: 1 thread id.
_DELETE_THREAD = """
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do redis.call('DEL', key) end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
"""


class ThreadOps:
    """Mixed into ``RedisCheckpointSaver``; relies on its client, keys and readers."""

    redis: aioredis.Redis
    keys: Keys
    ttl_s: int | None

    if TYPE_CHECKING:

        def _load(self, raw: bytes) -> Any: ...
        async def _namespaces(self, thread_id: str) -> list[str]: ...
        async def _now_ms(self) -> int: ...
        async def _track(self, pipe: Pipeline, thread_id: str, written: list[str]) -> None: ...

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, write and value of one thread to another.

        The source is read without a lock: copy a thread that no run is writing to.
        """
        k = self.keys
        src, dst = str(source_thread_id), str(target_thread_id)
        namespaces = await self._namespaces(src)
        if not namespaces:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for ns in namespaces:
                pipe.zrange(k.checkpoint_index(src, ns), 0, -1)
                pipe.hgetall(k.checkpoint_blobs(src, ns))
            listed = await pipe.execute()
        ids = {
            ns: [m.decode() for m in found]
            for ns, found in zip(namespaces, listed[::2], strict=True)
        }
        async with self.redis.pipeline(transaction=False) as pipe:
            for ns in namespaces:
                for cid in ids[ns]:
                    pipe.hgetall(k.checkpoint(src, ns, cid))
                    pipe.hgetall(k.checkpoint_writes(src, ns, cid))
            rows = iter(await pipe.execute())
        written: list[str] = []
        async with self.redis.pipeline(transaction=True) as pipe:
            for ns, blobs in zip(namespaces, listed[1::2], strict=True):
                written.append(k.checkpoint_namespaces(dst))
                pipe.sadd(written[-1], ns)
                if blobs:
                    written.append(k.checkpoint_blobs(dst, ns))
                    pipe.hset(written[-1], mapping=blobs)
                for cid in ids[ns]:
                    row, writes = next(rows), next(rows)
                    if not row:
                        continue
                    written += [k.checkpoint_index(dst, ns), k.checkpoint(dst, ns, cid)]
                    pipe.zadd(written[-2], {cid: 0})
                    pipe.delete(written[-1])
                    pipe.hset(written[-1], mapping=row)
                    if writes:
                        written.append(k.checkpoint_writes(dst, ns, cid))
                        pipe.hset(written[-1], mapping=writes)
                    if run_id := row.get(b"run_id"):
                        written.append(k.checkpoint_run(run_id.decode()))
                        pipe.sadd(written[-1], json.dumps([dst, ns, cid]))
            await self._track(pipe, dst, sorted(set(written)))
            await pipe.execute()

    # -- deletion and retention --------------------------------------------------------
    async def adelete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, write and value of the thread."""
        k = self.keys
        thread_id = str(thread_id)
        keys = [k.checkpoint_thread_keys(thread_id), k.checkpoint_threads]
        await self.redis.eval(_DELETE_THREAD, len(keys), *keys, thread_id)

    async def aexpire_thread(self, thread_id: str, ttl_s: int | None = None) -> None:
        """Expire every key of the thread after ``ttl_s`` seconds (default: the saver's).

        Keys the thread gains later inherit the remaining TTL.
        """
        ttl_s = self.ttl_s if ttl_s is None else ttl_s
        if ttl_s is None or ttl_s <= 0:
            raise ValueError(
                "aexpire_thread needs a positive ttl_s: pass one, or build the saver with "
                "RedisCheckpointSaver(..., ttl_s=...)"
            )
        thread_id, ttl_ms = str(thread_id), int(ttl_s * 1000)
        deadline = await self._now_ms() + ttl_ms
        await self._retention(thread_id, str(ttl_ms), str(deadline))

    async def apersist_thread(self, thread_id: str) -> None:
        """Remove the expiry from every key of the thread (a new run is starting on it)."""
        await self._retention(str(thread_id), "", "+inf")

    async def _retention(self, thread_id: str, ttl_ms: str, score: str) -> None:
        # one step over every key of the thread, however many it has
        k = self.keys
        keys = [k.checkpoint_thread_keys(thread_id), k.checkpoint_threads]
        await self.redis.eval(_RETENTION, len(keys), *keys, thread_id, ttl_ms, score)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) written by the given runs."""
        k = self.keys
        run_keys = [k.checkpoint_run(str(run_id)) for run_id in run_ids]
        if not run_keys:
            return

        async def delete(pipe: Pipeline) -> None:
            listed = [await pipe.smembers(run_key) for run_key in run_keys]
            pipe.multi()
            for run_key, members in zip(run_keys, listed, strict=True):
                for member in members:
                    thread_id, ns, cid = json.loads(member)
                    gone = [
                        k.checkpoint(thread_id, ns, cid),
                        k.checkpoint_writes(thread_id, ns, cid),
                    ]
                    pipe.delete(*gone)
                    pipe.zrem(k.checkpoint_index(thread_id, ns), cid)
                    pipe.srem(k.checkpoint_thread_keys(thread_id), *gone, run_key)
            pipe.delete(*run_keys)

        await self.redis.transaction(delete, *run_keys)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prune threads: ``"keep_latest"`` keeps each namespace's latest checkpoint (and
        the ancestors its DeltaChannel values are rebuilt from); ``"delete"`` removes all.
        """
        if strategy not in ("keep_latest", "delete"):
            raise ValueError(f"unknown prune strategy {strategy!r}: use 'keep_latest' or 'delete'")
        for thread_id in map(str, thread_ids):
            if strategy == "delete":
                await self.adelete_thread(thread_id)
                continue
            for ns in await self._namespaces(thread_id):
                watched = (
                    self.keys.checkpoint_index(thread_id, ns),
                    self.keys.checkpoint_blobs(thread_id, ns),
                )
                await self.redis.transaction(partial(self._keep_latest, thread_id, ns), *watched)

    async def _keep_latest(self, thread_id: str, ns: str, pipe: Pipeline) -> None:
        k = self.keys
        index, blobs_key = k.checkpoint_index(thread_id, ns), k.checkpoint_blobs(thread_id, ns)
        ids = [m.decode() for m in await pipe.zrange(index, 0, -1)]
        kept: dict[str, ChannelVersions] = {}
        cid: str | None = ids[-1] if ids else None
        # A DeltaChannel is rebuilt from ancestor writes back to its nearest stored value:
        # walk parents until every delta channel of the latest checkpoint has one.
        pending: set[str] | None = None
        while cid is not None and cid not in kept:
            row = await pipe.hgetall(k.checkpoint(thread_id, ns, cid))
            if not row:
                break
            versions = self._load(row[b"checkpoint"])["channel_versions"]
            kept[cid] = versions
            if pending is None:
                counters = self._load(row[b"metadata"]).get("counters_since_delta_snapshot")
                pending = set(counters or ())
            fields = [_field(ch, str(versions[ch])) for ch in pending if ch in versions]
            stored = await pipe.hmget(blobs_key, fields) if fields else []
            pending -= {
                json.loads(f)[0]
                for f, raw in zip(fields, stored, strict=True)
                if raw not in (None, _EMPTY)
            }
            parent = row.get(b"parent")
            cid = parent.decode() if pending and parent else None
        referenced = {_field(ch, str(v)) for vs in kept.values() for ch, v in vs.items()}
        unused = [f for f in await pipe.hkeys(blobs_key) if f.decode() not in referenced]
        dropped = [c for c in ids if c not in kept]
        pipe.multi()
        if dropped:
            gone = [
                key
                for c in dropped
                for key in (k.checkpoint(thread_id, ns, c), k.checkpoint_writes(thread_id, ns, c))
            ]
            pipe.delete(*gone)
            pipe.zrem(index, *dropped)
            pipe.srem(k.checkpoint_thread_keys(thread_id), *gone)
        if unused:
            pipe.hdel(blobs_key, *unused)
