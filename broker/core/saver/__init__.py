"""LangGraph checkpoint saver on plain Redis commands, so it runs on Redis 7+ and Valkey.

Per thread (key names in ``broker.core.keys``, layout in ``_lua``): a sorted set of its
checkpoints (namespace and id), one hash of their rows, writes and channel values, and a
set of the run indexes it is listed in. Every call is one round trip: a write is one
script, a read is one script that finds the checkpoint and returns its row, its writes
and the channel values it needs. Retention touches a fixed set of keys per thread plus
one per run that wrote to it, never one per checkpoint.
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

from broker.core.durable import Durability
from broker.core.fence import Fenced
from broker.core.keys import Keys
from broker.core.saver import _lua, _primed
from broker.core.saver._codec import (
    _EMPTY,
    _PAGE,
    Page,
    _async_only,
    _config,
    _fence,
    _field,
    _ns_name,
    _ns_prefix,
    _pack,
    _page_reply,
    _pairs,
    _row,
    _target,
    _unpack,
    _unrow,
)
from broker.core.saver._leased import LeasedRead
from broker.core.saver._primed import primed as primed
from broker.core.saver._threads import ThreadOps
from broker.core.saver._writes import RiddenWrites


class LegacyLayout(RuntimeError):
    """The thread has checkpoints in the layout of broker 0.1.0, which this saver neither
    reads (they look absent) nor writes to (docs/design.md, "Checkpoints")."""


class RedisCheckpointSaver(ThreadOps, LeasedRead, RiddenWrites, BaseCheckpointSaver[str]):
    """Async LangGraph checkpoint saver on plain Redis commands (no modules needed).

    ``redis`` must be created with ``decode_responses=False``. ``ttl_s`` is the default for
    `aexpire_thread`. Every state change is one script or MULTI/EXEC transaction. A config
    carrying a fence (broker/core/fence.py) makes puts refuse, with ``Fenced``, once
    another lease holder has taken the thread. A write that meets an outage of Redis is
    tried again for up to ``ride_out_s`` (``_writes``) before it fails the step.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        ttl_s: int | None = None,
        serde: SerializerProtocol | None = None,
        durable: Durability | None = None,
        ride_out_s: float = 0.0,
    ) -> None:
        super().__init__(serde=serde)
        self.redis = redis
        # with replicas to wait for (broker/core/durable.py), each checkpoint is on them
        # before the graph moves on, so a failover never takes back a finished step
        self.durable = durable
        self.ride_out_s = ride_out_s
        self.keys = keys
        self.ttl_s = ttl_s
        # called on their own, never in a pipeline (which would send SCRIPT EXISTS first):
        # EVALSHA, and the script itself only after NOSCRIPT
        self._put = redis.register_script(_lua.PUT)
        self._put_writes = redis.register_script(_lua.PUT_WRITES)
        self._read = redis.register_script(_lua.READ)
        self._ns_script = redis.register_script(_lua.NAMESPACES)
        self._retention_script = redis.register_script(_lua.RETENTION)
        self._delete_script = redis.register_script(_lua.DELETE_THREAD)

    # -- serialization ---------------------------------------------------------------
    def _dump(self, value: Any) -> bytes:
        type_, data = self.serde.dumps_typed(value)
        return _pack([type_], data)

    def _load(self, raw: bytes) -> Any:
        (type_,), data = _unpack(raw)
        return self.serde.loads_typed((type_, data))

    # -- reads -----------------------------------------------------------------------
    def _page_call(
        self, thread_id: str, ns: str, below: str | None, count: int, ids: Sequence[str] = ()
    ) -> tuple[list[str], list[Any]]:
        """The read script's keys and arguments: up to ``count`` checkpoints of the
        namespace newest first, strictly below ``below`` (or the checkpoints ``ids``),
        each with its writes, and the channel values they need."""
        pre = _ns_prefix(ns)
        keys = [self.keys.checkpoint_ids(thread_id), self.keys.checkpoint_data(thread_id)]
        return keys, [pre, "ids", *ids] if ids else [pre, "page", below or "", count]

    async def _page(
        self, thread_id: str, ns: str, below: str | None, count: int, ids: Sequence[str] = ()
    ) -> Page:
        """One script call (``_page_call``); its reply as ``_page_reply`` reads it."""
        keys, args = self._page_call(thread_id, ns, below, count, ids)
        return _page_reply(ns, await self._read(keys=keys, args=args))

    def _tuple(
        self,
        thread_id: str,
        ns: str,
        cid: str,
        row: bytes,
        writes: list[bytes],
        values: dict[bytes, bytes | None],
        filter: dict[str, Any] | None,
    ) -> CheckpointTuple | None:
        parent, _, cp_raw, md_raw = _unrow(row)
        metadata = self._load(md_raw)
        if filter and any(metadata.get(key) != value for key, value in filter.items()):
            return None
        cp = self._load(cp_raw)
        pre = b"b" + _ns_prefix(ns).encode()
        channel_values = {}
        for ch, v in cp["channel_versions"].items():
            raw = values.get(pre + _field(ch, str(v)).encode())
            if raw is not None and raw != _EMPTY:
                channel_values[ch] = self._load(raw)
        return CheckpointTuple(
            config=_config(thread_id, ns, cid),
            checkpoint={**cp, "channel_values": channel_values},  # type: ignore[typeddict-item]
            metadata=metadata,
            parent_config=_config(thread_id, ns, parent) if parent else None,
            pending_writes=self._pending_writes(writes),
        )

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
        """The checkpoint ``config`` names, or the latest: one round trip (or none, primed)."""
        thread_id, ns, cid = _target(config)
        if (hit := _primed.take(thread_id, ns, cid)) is not _primed.MISS:
            return hit
        _, _, found, values = await self._page(thread_id, ns, None, 1, [cid] if cid else ())
        for found_id, row, writes in found:
            return self._tuple(thread_id, ns, found_id, row, writes, values, None)
        return None

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
                below = before_id
                while True:
                    if only_id is None:
                        page = _PAGE if filter or left is None else min(left, _PAGE)
                        listed, last, found, values = await self._page(thread_id, ns, below, page)
                    elif before_id is None or only_id < before_id:
                        page, (listed, last, found, values) = (
                            1,
                            await self._page(thread_id, ns, None, 1, [only_id]),
                        )
                    else:
                        break
                    for cid, row, writes in found:
                        tup = self._tuple(thread_id, ns, cid, row, writes, values, filter)
                        if tup is None:
                            continue
                        yield tup
                        if left is not None:
                            left -= 1
                            if left == 0:
                                return
                    if only_id is not None or listed < page:
                        break
                    below = last

    async def _namespaces(self, thread_id: str) -> list[str]:
        found = await self._ns_script(keys=[self.keys.checkpoint_ids(thread_id)])
        return [_ns_name(m) for m in found]

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
        cid, pre = checkpoint["id"], _ns_prefix(ns)
        values = checkpoint["channel_values"]
        rest = {key: value for key, value in checkpoint.items() if key != "channel_values"}
        md = get_serializable_checkpoint_metadata(config, metadata)
        run_id = str(md["run_id"]) if md.get("run_id") else None
        needs = [_field(ch, str(v)) for ch, v in checkpoint["channel_versions"].items()]
        fields = {"c" + pre + cid: _row(needs, parent_id, run_id, self._dump(rest), self._dump(md))}
        for ch, v in new_versions.items():
            fields["b" + pre + _field(ch, str(v))] = (
                self._dump(values[ch]) if ch in values else _EMPTY
            )
        keys = [
            k.checkpoint_ids(thread_id),
            k.checkpoint_data(thread_id),
            k.checkpoint_thread_runs(thread_id),
            k.checkpoint_threads,
            k.checkpoint_run(run_id or "_"),
            k.checkpoint_legacy_keys(thread_id),
        ]
        run_entry = json.dumps([thread_id, ns, cid]) if run_id else ""
        args: list[Any] = [thread_id, pre + cid, run_entry, len(fields), *_pairs(fields)]
        fence = _fence(config, keys, args)
        done = await self._call(self._put, keys, args)
        if done == -1:
            raise LegacyLayout(
                f"thread {thread_id!r} has checkpoints stored by broker 0.1.0, which this "
                "version neither reads nor writes to: finish its runs on 0.1.0, or delete "
                "the thread's checkpoints (docs/design.md, Checkpoints)"
            )
        if not done:
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
        member = _ns_prefix(ns) + cid
        kept: dict[str, bytes] = {}
        replaced: dict[str, bytes] = {}
        for idx, (channel, value) in enumerate(writes):
            widx = WRITES_IDX_MAP.get(channel, idx)
            type_, data = self.serde.dumps_typed(value)
            entry = _pack([task_id, widx, channel, task_path, type_], data)
            (replaced if widx < 0 else kept)[_field(task_id, widx)] = entry
        keys = [self.keys.checkpoint_data(thread_id)]
        args: list[Any] = ["W" + member, "w" + member + "\0", len(kept), *_pairs(kept)]
        args += [len(replaced), *_pairs(replaced)]
        fence = _fence(config, keys, args)
        if not await self._call(self._put_writes, keys, args):
            raise Fenced(f"writes of thread {thread_id}: {fence} no longer holds it")

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
