"""Whole-thread operations of the Redis checkpoint saver: copy, delete, retention, prune.

A thread is a fixed set of keys (its checkpoints, its data hash, its run indexes), so
none of these ever SCANs, and retention never walks its checkpoints.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript

from broker.core.keys import Keys
from broker.core.saver._codec import _EMPTY, _field, _ns_name, _ns_prefix, _unrow

# After a copy: the target enters the registry, and if it expires, what was copied into
# it takes its remaining TTL. KEYS: 1 ids, 2 data, 3 run indexes, 4 registry, run indexes
# written...; ARGV: 1 thread id.
_SETTLE = """
local ttl = redis.call('PTTL', KEYS[2])
if ttl > 0 then
  for j = 1, #KEYS do if j ~= 4 then redis.call('PEXPIRE', KEYS[j], ttl) end end
else
  redis.call('ZADD', KEYS[4], 'NX', 'inf', ARGV[1])
end
"""


class ThreadOps:
    """Mixed into ``RedisCheckpointSaver``; relies on its client, keys and scripts."""

    redis: aioredis.Redis
    keys: Keys
    ttl_s: int | None
    _retention_script: AsyncScript
    _delete_script: AsyncScript

    if TYPE_CHECKING:

        def _load(self, raw: bytes) -> Any: ...
        async def _namespaces(self, thread_id: str) -> list[str]: ...

    def _thread(self, thread_id: str) -> list[str]:
        k = self.keys
        return [
            k.checkpoint_ids(thread_id),
            k.checkpoint_data(thread_id),
            k.checkpoint_thread_runs(thread_id),
            k.checkpoint_threads,
        ]

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, write and value of one thread to another.

        The source is read without a lock: copy a thread that no run is writing to.
        Field names hold no thread id, so the copy is the source's members and fields.
        """
        k = self.keys
        src, dst = str(source_thread_id), str(target_thread_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrange(k.checkpoint_ids(src), 0, -1)
            pipe.hgetall(k.checkpoint_data(src))
            members, data = await pipe.execute()
        if not members:
            return
        runs: dict[str, list[str]] = {}
        for member in members:
            ns, _, cid = member.partition(b"\0")
            row = data.get(b"c" + member)
            run_id = _unrow(row)[1] if row else None
            if run_id:
                runs.setdefault(k.checkpoint_run(run_id), []).append(
                    json.dumps([dst, _ns_name(ns), cid.decode()])
                )
        target = self._thread(dst)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(target[0], dict.fromkeys(members, 0))
            pipe.hset(target[1], mapping=data)
            for run_key, entries in runs.items():
                pipe.sadd(run_key, *entries)
                pipe.sadd(target[2], run_key)
            # EVAL rather than a registered script: a script in a pipeline makes redis-py
            # send SCRIPT EXISTS first
            pipe.eval(_SETTLE, len(target) + len(runs), *target, *runs, dst)
            await pipe.execute()

    # -- deletion and retention --------------------------------------------------------
    async def adelete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, write and value of the thread."""
        thread_id = str(thread_id)
        keys = [*self._thread(thread_id), self.keys.checkpoint_legacy_keys(thread_id)]
        await self._delete_script(keys=keys, args=[thread_id])

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
        thread_id = str(thread_id)
        await self._retention_script(keys=self._thread(thread_id), args=[thread_id, ttl_s * 1000])

    async def apersist_thread(self, thread_id: str) -> None:
        """Remove the expiry from every key of the thread (a new run is starting on it)."""
        thread_id = str(thread_id)
        await self._retention_script(keys=self._thread(thread_id), args=[thread_id, ""])

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) written by the given runs."""
        k = self.keys
        run_keys = [k.checkpoint_run(str(run_id)) for run_id in run_ids]
        if not run_keys:
            return

        async def delete(pipe: Pipeline) -> None:
            listed = [await pipe.smembers(run_key) for run_key in run_keys]
            gone = []
            for run_key, members in zip(run_keys, listed, strict=True):
                for member in members:
                    thread_id, ns, cid = json.loads(member)
                    index = f"W{_ns_prefix(ns)}{cid}"
                    writes = await pipe.hget(k.checkpoint_data(thread_id), index) or b""
                    gone.append((run_key, thread_id, _ns_prefix(ns) + cid, writes))
            pipe.multi()
            for run_key, thread_id, member, writes in gone:
                fields = [f"c{member}", f"W{member}"]
                fields += [f"w{member}\0{w.decode()}" for w in writes.split(b"\t") if w]
                pipe.hdel(k.checkpoint_data(thread_id), *fields)
                pipe.zrem(k.checkpoint_ids(thread_id), member)
                pipe.srem(k.checkpoint_thread_runs(thread_id), run_key)
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
            watched = (self.keys.checkpoint_ids(thread_id), self.keys.checkpoint_data(thread_id))
            await self.redis.transaction(partial(self._keep_latest, thread_id), *watched)

    async def _keep_latest(self, thread_id: str, pipe: Pipeline) -> None:
        k = self.keys
        ids_key, data_key = k.checkpoint_ids(thread_id), k.checkpoint_data(thread_id)
        members = await pipe.zrange(ids_key, 0, -1)
        by_ns: dict[bytes, list[bytes]] = {}
        for member in members:  # sorted by namespace, then id
            ns, _, cid = member.partition(b"\0")
            by_ns.setdefault(ns + b"\0", []).append(cid)
        kept: set[bytes] = set()  # members kept
        referenced: set[bytes] = set()  # blob fields they need
        for pre, cids in by_ns.items():
            versions = await self._keep_chain(pipe, data_key, pre, cids[-1], kept)
            referenced |= {b"b" + pre + _field(ch, str(v)).encode() for ch, v in versions}
        dropped = [m for m in members if m not in kept]
        unused = []
        for field in await pipe.hkeys(data_key):
            kind, rest = field[:1], field[1:]
            if kind == b"b":
                if field not in referenced:
                    unused.append(field)
            elif (rest if kind in (b"c", b"W") else rest.rpartition(b"\0")[0]) not in kept:
                unused.append(field)
        pipe.multi()
        if dropped:
            pipe.zrem(ids_key, *dropped)
        if unused:
            pipe.hdel(data_key, *unused)

    async def _keep_chain(
        self, pipe: Pipeline, data_key: str, pre: bytes, latest: bytes, kept: set[bytes]
    ) -> list[tuple[str, Any]]:
        """Marks the namespace's latest checkpoint kept, and the ancestors its DeltaChannel
        values are rebuilt from (back to each one's nearest stored value); returns the
        channel versions of all of them."""
        versions: list[tuple[str, Any]] = []
        pending: set[str] | None = None
        cid: bytes | None = latest
        while cid is not None and pre + cid not in kept:
            row = await pipe.hget(data_key, b"c" + pre + cid)
            if not row:
                break
            parent, _, cp_raw, md_raw = _unrow(row)
            chan = self._load(cp_raw)["channel_versions"]
            kept.add(pre + cid)
            versions += list(chan.items())
            if pending is None:
                counters = self._load(md_raw).get("counters_since_delta_snapshot")
                pending = set(counters or ())
            fields = [
                b"b" + pre + _field(ch, str(chan[ch])).encode() for ch in pending if ch in chan
            ]
            stored = await pipe.hmget(data_key, fields) if fields else []
            pending -= {
                json.loads(f[len(pre) + 1 :])[0]
                for f, raw in zip(fields, stored, strict=True)
                if raw not in (None, _EMPTY)
            }
            cid = parent.encode() if pending and parent else None
        return versions
