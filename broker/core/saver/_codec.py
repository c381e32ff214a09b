"""Encoding helpers and field names of the Redis checkpoint saver."""

from __future__ import annotations

import json
from typing import Any, NoReturn

from langchain_core.runnables import RunnableConfig

from broker.core.fence import CONFIG_KEY as FENCE_CONFIG_KEY
from broker.core.fence import Fence

_PAGE = 100

# Field names in a thread's data hash. A namespace is escaped ('%' and NUL) and ends with
# NUL, so one namespace's checkpoints are one BYLEX range of the thread's sorted set and
# no field of one namespace is a field of another:
#   c<ns>NUL<id>            the checkpoint's row (_row)
#   W<ns>NUL<id>            its write index: write ids, tab-separated
#   w<ns>NUL<id>NUL<write>  one write, <write> = JSON [task id, index]
#   b<ns>NUL<channel value> one channel value, <channel value> = JSON [channel, version]
# JSON keeps tabs and newlines out of write ids and channel values, so a row and an index
# can list them.


def _ns_prefix(ns: str) -> str:
    return ns.replace("%", "%25").replace("\0", "%00") + "\0"


def _ns_name(escaped: bytes) -> str:
    return escaped.decode().replace("%00", "\0").replace("%25", "%")


def _row(needs: list[str], parent: str | None, run_id: str | None, cp: bytes, md: bytes) -> bytes:
    """A checkpoint's row: the channel values it needs, then its parent, run, checkpoint
    (serialized without its values) and metadata."""
    return "\t".join(needs).encode() + b"\n" + _pack([parent or "", run_id or "", len(cp)], cp + md)


def _unrow(raw: bytes) -> tuple[str | None, str | None, bytes, bytes]:
    """Parent id, run id, checkpoint and metadata of a row."""
    (parent, run_id, n), data = _unpack(raw.partition(b"\n")[2])
    return parent or None, run_id or None, data[:n], data[n:]


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


Page = tuple[int, str, list[tuple[str, bytes, list[bytes]]], dict[bytes, bytes | None]]


def _page_reply(ns: str, reply: list[Any]) -> Page:
    """The read script's reply: how many ids it listed, the last one, the checkpoints
    found (id, row, writes) and the channel values by field."""
    listed, last, cids, rows, indexes, fields, values = reply
    pre = _ns_prefix(ns)
    found = dict(zip(fields, values, strict=True))
    tuples = []
    for cid, row, index in zip(cids, rows, indexes, strict=True):
        prefix = b"w" + pre.encode() + cid + b"\0"
        writes = [found[prefix + w] for w in index.split(b"\t") if w]
        tuples.append((cid.decode(), row, [w for w in writes if w is not None]))
    return int(listed), last.decode() if isinstance(last, bytes) else "", tuples, found
