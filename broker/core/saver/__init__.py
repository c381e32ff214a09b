"""LangGraph checkpoint saver on plain Redis commands, so it runs on Redis 7+ and Valkey.

Per thread and namespace (key names in ``broker.core.keys``): a sorted set of checkpoint ids,
all scored 0 so BYLEX ranges order them by uuid6 time; one hash per checkpoint (serialized
checkpoint without its values, metadata, parent id, run id); one hash per checkpoint of
pending writes; one hash of channel values keyed by (channel, version). A per-thread set
lists every one of those keys, so retention and deletion never SCAN.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Sequence
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
from redis.commands.core import AsyncScript

from broker.core.durable import Durability
from broker.core.fence import Fenced
from broker.core.keys import Keys
from broker.core.saver._codec import (
    _EMPTY,
    _PAGE,
    _PUT,
    _PUT_WRITES,
    _TRACK,
    _async_only,
    _config,
    _fence,
    _field,
    _pack,
    _pairs,
    _target,
    _unpack,
)
from broker.core.saver._threads import ThreadOps


class RedisCheckpointSaver(ThreadOps, BaseCheckpointSaver[str]):
    """Async LangGraph checkpoint saver on plain Redis commands (no modules needed).

    ``redis`` must be created with ``decode_responses=False``. ``ttl_s`` is the default for
    `aexpire_thread`. Every state change is one MULTI/EXEC transaction or script. A config
    carrying a fence (broker/core/fence.py) makes puts refuse, with ``Fenced``, once
    another lease holder has taken the thread.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        ttl_s: int | None = None,
        serde: SerializerProtocol | None = None,
        durable: Durability | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self.redis = redis
        # with replicas to wait for (broker/core/durable.py), each checkpoint is on them
        # before the graph moves on, so a failover never takes back a finished step
        self.durable = durable
        self.keys = keys
        self.ttl_s = ttl_s
        # called on their own, never in a pipeline (which would send SCRIPT EXISTS first)
        self._put = redis.register_script(_PUT)
        self._put_writes = redis.register_script(_PUT_WRITES)

    # -- serialization ---------------------------------------------------------------
    def _dump(self, value: Any) -> bytes:
        type_, data = self.serde.dumps_typed(value)
        return _pack([type_], data)

    def _load(self, raw: bytes) -> Any:
        (type_,), data = _unpack(raw)
        return self.serde.loads_typed((type_, data))

    async def _track(self, pipe: Pipeline, thread_id: str, written: list[str]) -> None:
        keys = [self.keys.checkpoint_thread_keys(thread_id), self.keys.checkpoint_threads]
        # EVAL rather than a registered script: a script in a pipeline makes redis-py send
        # SCRIPT EXISTS before every write
        pipe.eval(_TRACK, len(keys) + len(written), *keys, *written, thread_id)

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
        keys = [
            k.checkpoint_thread_keys(thread_id),
            k.checkpoint_threads,
            k.checkpoint_namespaces(thread_id),
            k.checkpoint_index(thread_id, ns),
            k.checkpoint(thread_id, ns, cid),
            k.checkpoint_blobs(thread_id, ns),
            k.checkpoint_run(str(run_id or "_")),
        ]
        run_entry = json.dumps([thread_id, ns, cid]) if run_id else ""
        args: list[Any] = [thread_id, ns, cid, run_entry, len(row), *_pairs(row)]
        args += [len(blobs), *_pairs(blobs)]
        fence = _fence(config, keys, args)
        if not await self._call(self._put, keys, args):
            raise Fenced(f"checkpoint of thread {thread_id}: {fence} no longer holds it")
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
        keys = [self.keys.checkpoint_thread_keys(thread_id), self.keys.checkpoint_threads, key]
        args: list[Any] = [thread_id, len(kept), *_pairs(kept), len(replaced), *_pairs(replaced)]
        fence = _fence(config, keys, args)
        if not await self._call(self._put_writes, keys, args):
            raise Fenced(f"writes of thread {thread_id}: {fence} no longer holds it")

    async def _call(self, script: AsyncScript, keys: list[Any], args: list[Any]) -> Any:
        if self.durable is not None:
            return await self.durable.script(script, keys, args)
        return await script(keys=keys, args=args)

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
