"""The channel contract (docs/design.md, "Layout"): what every answer channel calls."""

from __future__ import annotations

import redis.asyncio as aioredis
from arq.connections import ArqRedis

from broker.core import channel
from broker.core.records import Channel, InterruptStatus
from broker.core.settings import Settings
from broker.core.store import Store
from tests.stored import waiting


async def test_each_batch_of_answers_queues_its_own_job(
    aredis: aioredis.Redis, settings: Settings, queue: ArqRedis
) -> None:
    store = Store(aredis, settings)
    _, [a, b] = await waiting(store, "a", {"n": 1}, {"n": 2})
    for iid in (a, b):
        h = await store.interrupt(iid)
        assert await channel.answer_many(store, queue, [(h, iid)], channel=Channel.AGUI) == 1
        assert (await store.interrupt(iid)).status == InterruptStatus.RESOLVED
    # a second batch on the same run is not mistaken for a repeat of the first
    assert await aredis.zcard(store.keys.queue) == 2
