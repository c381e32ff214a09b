"""Every Redis connection the broker opens, from one URL and one set of options.

The API, the worker, the checkpoint saver, the event readers and arq's job queue all
build their clients here, so a deployment points every one of them at a plain server,
a TLS server or a Sentinel-managed primary with the same ``REDIS_URL``:

- ``redis://[user:password@]host:6379/0`` (or ``unix:///path?db=0``);
- ``rediss://…``: TLS, verified against ``BROKER_REDIS_CA_FILE`` when set;
- ``redis+sentinel://[user:password@]host:26379,host2:26379/mymaster/0`` (and
  ``rediss+sentinel://`` for TLS): the primary that the sentinels name, found again
  after a failover. The credentials are the data nodes'; sentinels that need a password
  of their own read ``BROKER_REDIS_SENTINEL_PASSWORD``.

Under Sentinel the pools are ``broker.core.primary.PrimaryPool``: they verify the
node's role on connect and leave a demoted or replaced primary at once.

Every command has a socket timeout (``BROKER_REDIS_TIMEOUT_S``) and every connect a
connect timeout, so a stalled server turns into an error within seconds, never a hang.
Readers that block on the server (XREAD BLOCK, pub/sub) add their block time to it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis.asyncio as aioredis
from arq.connections import ArqRedis
from redis.asyncio.sentinel import Sentinel

from broker.core import arq_keys, primary
from broker.core.keys import Keys
from broker.core.settings import Settings

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
PLAIN_SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True)
class RedisTarget:
    """What a ``REDIS_URL`` names: a server, or a primary found through sentinels."""

    url: str
    tls: bool
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinels: tuple[tuple[str, int], ...] = ()
    master: str | None = None

    @property
    def sentinel(self) -> bool:
        return bool(self.sentinels)


def parse_url(url: str) -> RedisTarget:
    """The target of ``url``; ValueError names what is wrong with it."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in PLAIN_SCHEMES:
        # redis-py parses these itself; checked here so a typo fails at start-up
        try:
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError as exc:
            raise ValueError(f"REDIS_URL has a malformed port: {exc}") from None
        return RedisTarget(url=url, tls=scheme == "rediss")
    if scheme not in SENTINEL_SCHEMES:
        raise ValueError(
            f"REDIS_URL scheme {scheme!r} is not supported: use redis://, rediss://, "
            "unix://, or redis+sentinel://host:26379,host2:26379/<master>/<db>"
        )
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":") if userinfo else ("", "", "")
    sentinels: list[tuple[str, int]] = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":") if ":" in item else (item, "", "26379")
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"REDIS_URL names a malformed sentinel address: {item!r}")
        sentinels.append((host, int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ValueError(
            "REDIS_URL for Sentinel must name the primary: "
            "redis+sentinel://host:26379,host2:26379/<master>/<db>"
        )
    db_text = path[1] if len(path) == 2 else parse_qs(parts.query).get("db", ["0"])[0]
    if not db_text.isdigit():
        raise ValueError(f"REDIS_URL database must be a number, not {db_text!r}")
    return RedisTarget(
        url=url,
        tls=scheme == "rediss+sentinel",
        db=int(db_text),
        username=unquote(username) or None,
        password=unquote(password) or None,
        sentinels=tuple(sentinels),
        master=unquote(path[0]),
    )


def _options(settings: Settings, target: RedisTarget, *, block_s: float | None) -> dict[str, Any]:
    options: dict[str, Any] = {
        "socket_connect_timeout": settings.redis_connect_timeout_s,
        # a blocking read (XREAD BLOCK, pub/sub) may wait its block time on top
        "socket_timeout": None if block_s is None else settings.redis_timeout_s + block_s,
        "socket_keepalive": True,
        "health_check_interval": settings.redis_health_check_s,
    }
    if target.tls:
        options["ssl_ca_certs"] = settings.redis_ca_file
        options["ssl_cert_reqs"] = "required"
    return options


def _sentinel(settings: Settings, target: RedisTarget, options: dict[str, Any]) -> Sentinel:
    sentinel_options = {
        "socket_connect_timeout": options["socket_connect_timeout"],
        "socket_timeout": settings.redis_timeout_s,
        "password": settings.redis_sentinel_password,
    }
    if target.tls:
        sentinel_options.update(ssl=True, ssl_ca_certs=settings.redis_ca_file)
    data_options = dict(options)
    if target.tls:
        data_options["ssl"] = True
    return Sentinel(
        list(target.sentinels),
        sentinel_kwargs=sentinel_options,
        db=target.db,
        username=target.username,
        password=target.password,
        **data_options,
    )


def redis_client(
    settings: Settings, *, decode: bool = True, block_s: float | None = 0.0
) -> aioredis.Redis:
    """A client on the broker's Redis (the current primary, under Sentinel).

    ``block_s`` is the longest a command on this client blocks on the server by design
    (XREAD BLOCK); ``None`` means it may wait indefinitely (pub/sub listeners).
    """
    target = parse_url(settings.require_redis_url())
    options = _options(settings, target, block_s=block_s)
    if target.sentinel:
        assert target.master is not None
        return _sentinel(settings, target, options).master_for(
            target.master,
            redis_class=aioredis.Redis,
            connection_pool_class=primary.PrimaryPool,
            decode_responses=decode,
        )
    client = aioredis.Redis.from_url(target.url, decode_responses=decode, **options)
    primary.fence(client.connection_pool)
    return client


def queue_pool(settings: Settings, queue_name: str) -> ArqRedis:
    """arq's pool on the broker's job queue, with the same target and timeouts; arq's
    keys go under the broker's prefix (broker/core/arq_keys.py)."""
    arq_keys.install(Keys(settings.key_prefix))
    target = parse_url(settings.require_redis_url())
    options = _options(settings, target, block_s=0.0)
    if target.sentinel:
        assert target.master is not None
        pool = _sentinel(settings, target, options).master_for(
            target.master, redis_class=ArqRedis, connection_pool_class=primary.PrimaryPool
        )
    else:
        pool = ArqRedis.from_pool(
            primary.fence(aioredis.ConnectionPool.from_url(target.url, **options))
        )
    pool.default_queue_name = queue_name
    return pool


def watch_primary(settings: Settings) -> asyncio.Task[None] | None:
    """Under Sentinel, a task that moves every pool of this process to a new primary as
    soon as the sentinels name one (``broker/core/primary.py``); None otherwise."""
    target = parse_url(settings.require_redis_url())
    if not target.sentinel:
        return None
    assert target.master is not None
    sentinel = _sentinel(settings, target, _options(settings, target, block_s=0.0))
    return asyncio.create_task(
        primary.watch_primary(sentinel, target.master, settings.redis_sentinel_poll_s)
    )
