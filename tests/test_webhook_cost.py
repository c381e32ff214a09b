"""What the webhook dispatcher costs Redis: nothing per event while nobody subscribes.

The commands are counted with INFO commandstats on a redis-server of the test's own, so
nothing else adds to them. The dispatcher is the broker's only user of consumer-group
commands (XREADGROUP, XACK, XAUTOCLAIM, XGROUP, XINFO) and of HLEN.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from broker.core.keys import Keys
from tests.flow import answer, next_interrupt, start, wait_status
from tests.harness import Broker, free_port, wait_until
from tests.receiver import Receiver, running
from worker import deliveries

DISPATCHER_COMMANDS = ("xreadgroup", "xack", "xautoclaim", "xgroup", "xinfo", "hlen")


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)]
    argv += ["--save", "", "--appendonly", "no"]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"

    def up() -> bool:
        try:
            return bool(redis.Redis.from_url(url).ping())
        except redis.RedisError:
            return False

    try:
        wait_until(up, "redis-server to start")
        yield url
    finally:
        server.terminate()
        server.wait(10)


def dispatcher_calls(r: redis.Redis) -> dict[str, int]:
    """Calls so far of each command only the dispatcher uses (subcommands apart)."""
    stats: dict[str, Any] = r.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): int(v["calls"])
        for name, v in stats.items()
        if name.removeprefix("cmdstat_").split("|")[0] in DISPATCHER_COMMANDS
    }


def grown(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: n - before.get(k, 0) for k, n in after.items() if n > before.get(k, 0)}


def cycle(api: httpx.Client) -> str:
    """One whole approval cycle of the counter agent; returns its run id."""
    run = start(api, "counter", {})
    answer(api, next_interrupt(api, run["run_id"])["id"], 1)
    wait_status(api, run["run_id"], "succeeded")
    return str(run["run_id"])


def groups(r: redis.Redis, keys: Keys) -> list[str]:
    return [g["name"].decode() for g in r.xinfo_groups(keys.events)]


def runs_delivered(receiver: Receiver, path: str) -> set[str]:
    return {json.loads(x.body)["data"]["run_id"] for x in receiver.at(path)}


@pytest.mark.slow
def test_without_subscriptions_the_dispatcher_reads_nothing_and_a_new_one_is_served(
    own_redis: str, tmp_path: Path
) -> None:
    prefix = f"ibwc{uuid.uuid4().hex[:8]}"
    keys, r = Keys(prefix), redis.Redis.from_url(own_redis)
    b = Broker(own_redis, prefix, tmp_path, BROKER_WEBHOOK_ALLOW_PRIVATE="1")
    with running() as receiver, b.serving(), httpx.Client(base_url=b.url, timeout=30) as api:
        cycle(api)  # warm-up: connections, scripts, the stream
        before = dispatcher_calls(r)
        for _ in range(3):
            cycle(api)
        # long enough for any dispatcher that polls while idle to have done so twice
        time.sleep(deliveries.IDLE_S * 2.5)
        assert grown(before, dispatcher_calls(r)) == {}
        assert groups(r, keys) == []

        # a subscription made at runtime is served from its creation on
        path = f"/ok/{uuid.uuid4().hex}"
        made = api.post("/admin/webhooks", json={"url": receiver.url + path, "agents": ["counter"]})
        assert made.status_code == 201, made.text
        served = cycle(api)
        wait_until(lambda: served in runs_delivered(receiver, path), "the new webhook's delivery")
        assert grown(before, dispatcher_calls(r)).get("xreadgroup", 0) > 0
        assert groups(r, keys) == [keys.webhook_group]

        # removed, the dispatcher stops reading; the events of the meantime go to nobody
        assert api.delete(f"/admin/webhooks/{made.json()['id']}").status_code == 204
        wait_until(lambda: groups(r, keys) == [], "the dispatch group to go")
        time.sleep(deliveries.IDLE_S * 1.5)
        quiet = dispatcher_calls(r)
        unheard = cycle(api)
        time.sleep(deliveries.IDLE_S * 1.5)
        assert grown(quiet, dispatcher_calls(r)) == {}

        again = f"/ok/{uuid.uuid4().hex}"
        made = api.post("/admin/webhooks", json={"url": receiver.url + again})
        assert made.status_code == 201, made.text
        heard = cycle(api)
        wait_until(lambda: heard in runs_delivered(receiver, again), "the second webhook")
        assert unheard not in runs_delivered(receiver, again)
        assert unheard not in runs_delivered(receiver, path)
