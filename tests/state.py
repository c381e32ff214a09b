"""What is stored under a broker's key prefix, to prove a refused request changed nothing."""

from __future__ import annotations

from typing import Any

import redis

from broker.core.keys import Keys
from tests.harness import wait_until


def snapshot(redis_url: str, prefix: str, *, audit: bool = True) -> dict[Any, Any]:
    """Every key under the prefix with its value. Bookkeeping that moves on its own
    (worker liveness, locks and leases, the job queue and arq's job keys, webhook delivery
    logs) is left out, and so is the audit log unless ``audit``."""
    moving = ("workers", "lock:", "lease:", "webhook:", "queue", "arq:")
    skip = tuple(f"{prefix}:{k}".encode() for k in moving)
    audit_keys = f"{prefix}:audit:".encode()
    client = redis.Redis.from_url(redis_url)
    try:
        out: dict[Any, Any] = {}
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            if key.startswith(skip) or (not audit and key.startswith(audit_keys)):
                continue
            kind = client.type(key).decode()
            if kind == "hash":
                out[key] = client.hgetall(key)
            elif kind == "zset":
                out[key] = client.zrange(key, 0, -1, withscores=True)
            elif kind == "string":
                out[key] = client.get(key)
            elif kind == "stream":
                out[key] = client.xlen(key)
            elif kind == "list":
                out[key] = client.lrange(key, 0, -1)
            elif kind == "set":
                out[key] = sorted(client.smembers(key))
            else:
                out[key] = kind
        return out
    finally:
        client.close()


def settle(redis_url: str, prefix: str) -> None:
    """Waits until no run is queued, running or due: nothing changes on its own after."""
    k = Keys(prefix)
    busy = [k.runs_by_status("queued"), k.runs_by_status("running"), k.runs_due]
    client = redis.Redis.from_url(redis_url)
    try:
        wait_until(lambda: not any(client.zcard(key) for key in busy), "the runs to settle")
    finally:
        client.close()
