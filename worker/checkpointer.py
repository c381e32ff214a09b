"""LangGraph checkpoint saver on plain Redis commands, so it runs on Redis 7+ and Valkey.

Per thread and namespace (key names in ``broker.keys``): a sorted set of checkpoint ids,
all scored 0 so BYLEX ranges order them by uuid6 time; one hash per checkpoint (serialized
checkpoint without its values, metadata, parent id, run id); one hash per checkpoint of
pending writes; one hash of channel values keyed by (channel, version). A per-thread set
lists every one of those keys, so retention and deletion never SCAN.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Callable, Sequence
from functools import partial
from typing import Any, NoReturn

import redis.asyncio as aioredis
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from redis.asyncio.client import Pipeline

from broker.keys import Keys

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


class RedisCheckpointSaver(BaseCheckpointSaver[str]):
    """Async LangGraph checkpoint saver on plain Redis commands (no modules needed).

    ``redis`` must be created with ``decode_responses=False``. ``ttl_s`` is the default for
    `aexpire_thread`. Every state change is one MULTI/EXEC transaction.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        ttl_s: int | None = None,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self.redis = redis
        self.keys = keys
        self.ttl_s = ttl_s
        self._track_script = redis.register_script(_TRACK)

    # -- serialization ---------------------------------------------------------------
    def _dump(self, value: Any) -> bytes:
        type_, data = self.serde.dumps_typed(value)
        return _pack([type_], data)

    def _load(self, raw: bytes) -> Any:
        (type_,), data = _unpack(raw)
        return self.serde.loads_typed((type_, data))

    async def _track(self, pipe: Pipeline, thread_id: str, written: list[str]) -> None:
        keys = [self.keys.checkpoint_thread_keys(thread_id), self.keys.checkpoint_threads]
        await self._track_script(keys=[*keys, *written], args=[thread_id], client=pipe)

    # -- reads -----------------------------------------------------------------------
    async def _ids(self, thread_id: str, ns: str, below: str | None, count: int) -> list[str]:
        # Newest first, strictly below ``below``: O(log n) wherever the page starts.
        found = await self.redis.zrevrangebylex(
            self.keys.checkpoint_index(thread_id, ns), f"({below}" if below else "+", "-", 0, count
        )
        return [m.decode() for m in found]

    async def _tuples(
        self, thread_id: str, ns: str, ids: Sequence[str], filter: dict[str, Any] | None
    ) -> list[CheckpointTuple]:
        k = self.keys
        async with self.redis.pipeline(transaction=False) as pipe:
            for cid in ids:
                pipe.hgetall(k.checkpoint(thread_id, ns, cid))
                pipe.hvals(k.checkpoint_writes(thread_id, ns, cid))
            replies = await pipe.execute()
        found = []
        for cid, row, writes in zip(ids, replies[::2], replies[1::2], strict=True):
            if not row:
                continue  # deleted after the index was read
            metadata = self._load(row[b"metadata"])
            if filter and any(metadata.get(key) != value for key, value in filter.items()):
                continue
            found.append((cid, row, metadata, writes, self._load(row[b"checkpoint"])))
        wanted = sorted(
            {_field(ch, str(v)) for *_, cp in found for ch, v in cp["channel_versions"].items()}
        )
        blobs: dict[str, bytes | None] = {}
        if wanted:
            stored = await self.redis.hmget(k.checkpoint_blobs(thread_id, ns), wanted)
            blobs = dict(zip(wanted, stored, strict=True))
        tuples = []
        for cid, row, metadata, writes, cp in found:
            values = {}
            for ch, v in cp["channel_versions"].items():
                raw = blobs.get(_field(ch, str(v)))
                if raw is not None and raw != _EMPTY:
                    values[ch] = self._load(raw)
            parent = row.get(b"parent")
            tuples.append(
                CheckpointTuple(
                    config=_config(thread_id, ns, cid),
                    checkpoint={**cp, "channel_values": values},  # type: ignore[typeddict-item]
                    metadata=metadata,
                    parent_config=_config(thread_id, ns, parent.decode()) if parent else None,
                    pending_writes=self._pending_writes(writes),
                )
            )
        return tuples

    def _pending_writes(self, stored: list[bytes]) -> list[PendingWrite]:
        entries = []
        for raw in stored:
            (task_id, idx, channel, task_path, type_), data = _unpack(raw)
            entries.append(
                (writes_sort_key(task_path, task_id, idx), task_id, channel, type_, data)
            )
        entries.sort(key=lambda e: e[0])
        return [(t, ch, self.serde.loads_typed((ty, data))) for _, t, ch, ty, data in entries]

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint named by ``config``, or the namespace's latest without an id."""
        thread_id, ns, cid = _target(config)
        if cid is None:
            latest = await self._ids(thread_id, ns, None, 1)
            if not latest:
                return None
            cid = latest[0]
        found = await self._tuples(thread_id, ns, [cid], None)
        return found[0] if found else None

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Checkpoints newest first per namespace; ``config=None`` lists every thread."""
        if limit is not None and limit <= 0:
            return
        only_ns: str | None = None
        only_id: str | None = None
        if config is None:
            threads = await self._threads()
        else:
            threads = [str(config["configurable"]["thread_id"])]
            only_ns = config["configurable"].get("checkpoint_ns")
            only_id = get_checkpoint_id(config)
        before_id = get_checkpoint_id(before) if before else None
        left = limit
        for thread_id in threads:
            namespaces = [only_ns] if only_ns is not None else await self._namespaces(thread_id)
            for ns in namespaces:
                below, page = before_id, 0
                while True:
                    if only_id is None:
                        page = _PAGE if filter or left is None else min(left, _PAGE)
                        ids = await self._ids(thread_id, ns, below, page)
                    else:
                        ids = [only_id] if before_id is None or only_id < before_id else []
                    for tup in await self._tuples(thread_id, ns, ids, filter):
                        yield tup
                        if left is not None:
                            left -= 1
                            if left == 0:
                                return
                    if only_id is not None or len(ids) < page:
                        break
                    below = ids[-1]

    async def _namespaces(self, thread_id: str) -> list[str]:
        members = await self.redis.smembers(self.keys.checkpoint_namespaces(thread_id))
        return sorted(m.decode() for m in members)

    async def _threads(self) -> list[str]:
        registry = self.keys.checkpoint_threads
        # Drop threads whose keys have expired; the registry holds each one's deadline.
        await self.redis.zremrangebyscore(registry, "-inf", await self._now_ms())
        return [m.decode() for m in await self.redis.zrange(registry, 0, -1)]

    async def _now_ms(self) -> int:
        seconds, micros = await self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000

    # -- writes ----------------------------------------------------------------------
    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint and the channel values that changed in it."""
        k = self.keys
        thread_id, ns, parent_id = _target(config)
        cid = checkpoint["id"]
        values = checkpoint["channel_values"]
        rest = {key: value for key, value in checkpoint.items() if key != "channel_values"}
        md = get_serializable_checkpoint_metadata(config, metadata)
        row = {"checkpoint": self._dump(rest), "metadata": self._dump(md)}
        if parent_id:
            row["parent"] = parent_id.encode()
        run_id = md.get("run_id")
        if run_id:
            row["run_id"] = str(run_id).encode()
        blobs = {
            _field(ch, str(v)): self._dump(values[ch]) if ch in values else _EMPTY
            for ch, v in new_versions.items()
        }
        ns_key, index = k.checkpoint_namespaces(thread_id), k.checkpoint_index(thread_id, ns)
        cp_key = k.checkpoint(thread_id, ns, cid)
        written = [ns_key, index, cp_key]
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.sadd(ns_key, ns)
            pipe.zadd(index, {cid: 0})
            pipe.delete(cp_key)  # a repeated put replaces the whole row
            pipe.hset(cp_key, mapping=row)
            if blobs:
                written.append(k.checkpoint_blobs(thread_id, ns))
                pipe.hset(written[-1], mapping=blobs)
            if run_id:
                written.append(k.checkpoint_run(str(run_id)))
                pipe.sadd(written[-1], json.dumps([thread_id, ns, cid]))
            await self._track(pipe, thread_id, written)
            await pipe.execute()
        return _config(thread_id, ns, cid)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's writes against the checkpoint named by ``config``."""
        thread_id, ns, cid = _target(config)
        if not writes or cid is None:
            return
        key = self.keys.checkpoint_writes(thread_id, ns, cid)
        kept: dict[str, bytes] = {}
        replaced: dict[str, bytes] = {}
        for idx, (channel, value) in enumerate(writes):
            widx = WRITES_IDX_MAP.get(channel, idx)
            type_, data = self.serde.dumps_typed(value)
            entry = _pack([task_id, widx, channel, task_path, type_], data)
            (replaced if widx < 0 else kept)[_field(task_id, widx)] = entry
        async with self.redis.pipeline(transaction=True) as pipe:
            # A retried task must not change writes already saved; special channels
            # (errors, interrupts, resumes) keep only their latest value, as InMemorySaver does.
            for field, entry in kept.items():
                pipe.hsetnx(key, field, entry)
            if replaced:
                pipe.hset(key, mapping=replaced)
            await self._track(pipe, thread_id, [key])
            await pipe.execute()

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
    async def _for_thread_keys(
        self, thread_id: str, apply: Callable[[Pipeline, list[Any]], None]
    ) -> None:
        # apply(pipe, keys) runs in one transaction over every key of the thread; WATCH on
        # the key index retries it when a concurrent write adds a key in between.
        index = self.keys.checkpoint_thread_keys(thread_id)

        async def run(pipe: Pipeline) -> None:
            members = await pipe.smembers(index)
            pipe.multi()
            apply(pipe, [index, *members])

        await self.redis.transaction(run, index)

    async def adelete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, write and value of the thread."""
        thread_id = str(thread_id)

        def delete(pipe: Pipeline, keys: list[Any]) -> None:
            pipe.delete(*keys)
            pipe.zrem(self.keys.checkpoint_threads, thread_id)

        await self._for_thread_keys(thread_id, delete)

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

        def expire(pipe: Pipeline, keys: list[Any]) -> None:
            for key in keys:
                pipe.pexpire(key, ttl_ms)
            pipe.zadd(self.keys.checkpoint_threads, {thread_id: deadline}, xx=True)

        await self._for_thread_keys(thread_id, expire)

    async def apersist_thread(self, thread_id: str) -> None:
        """Remove the expiry from every key of the thread (a new run is starting on it)."""
        thread_id = str(thread_id)

        def persist(pipe: Pipeline, keys: list[Any]) -> None:
            for key in keys:
                pipe.persist(key)
            pipe.zadd(self.keys.checkpoint_threads, {thread_id: float("inf")}, xx=True)

        await self._for_thread_keys(thread_id, persist)

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

    def get_next_version(self, current: str | None, channel: None) -> str:
        # Same scheme as InMemorySaver: the random suffix keeps forks of one parent from
        # writing the same (channel, version) blob.
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(current.split(".")[0])
        return f"{current_v + 1:032}.{random.random():016}"

    # -- sync API: not supported ---------------------------------------------------------
    def get_tuple(self, *args: Any, **kwargs: Any) -> NoReturn:
        _async_only("aget_tuple")

    def list(self, *args: Any, **kwargs: Any) -> NoReturn:
        _async_only("alist")

    def put(self, *args: Any, **kwargs: Any) -> NoReturn:
        _async_only("aput")

    def put_writes(self, *args: Any, **kwargs: Any) -> NoReturn:
        _async_only("aput_writes")

    def delete_thread(self, *args: Any, **kwargs: Any) -> NoReturn:
        _async_only("adelete_thread")

    def delete_for_runs(self, *args: Any, **kwargs: Any) -> NoReturn:
        _async_only("adelete_for_runs")

    def copy_thread(self, *args: Any, **kwargs: Any) -> NoReturn:
        _async_only("acopy_thread")

    def prune(self, *args: Any, **kwargs: Any) -> NoReturn:
        _async_only("aprune")
