"""Staying on the primary: connection pools that leave a demoted or replaced one at once.

Under Sentinel, every client the broker builds (store, saver, event readers, arq's
queue, the wake-up listener) uses ``PrimaryPool``. Its connections:

- verify the node's ``ROLE`` when they connect, so a connection never opens on a replica
  (the sentinels may still name a primary that was just demoted);
- on ``READONLY`` (the node was demoted to a replica) or ``NOREPLICAS`` (with
  ``min-replicas-to-write``, a primary cut off from its replicas) raise
  ``ConnectionError`` and drop not only themselves but mark the whole pool stale:
  every other connection is closed before its next use, and the next connect asks
  the sentinels again;
- are dropped too when ``watch_primary`` sees the sentinels name another primary, or
  when a write's replicas did not confirm it (``broker/core/durable.py``).

A primary demoted by a graceful failover keeps its role for a few seconds and would
take writes on connections already open; those writes find too few replicas to
confirm them (and with ``min-replicas-to-write`` on the Redis side, it refuses them
outright), so they are never acknowledged, and the pools move on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from typing import Any, NoReturn

import redis.asyncio as aioredis
from redis.asyncio.connection import SSLConnection
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection
from redis.exceptions import ConnectionError, ReadOnlyError, ResponseError
from redis.utils import str_if_bytes

log = logging.getLogger("broker.core.primary")

_POOLS: weakref.WeakSet[PrimaryPool] = weakref.WeakSet()


class PrimaryConnection(SentinelManagedConnection):
    """A connection to the primary that checks it is one, and leaves it when it is not."""

    generation = -1

    async def connect_to(self, address: Any) -> None:
        await super().connect_to(address)
        pool: PrimaryPool = self.connection_pool
        if pool.is_master:
            await self.send_command("ROLE")
            role = str_if_bytes((await self.read_response())[0])
            if role != "master":
                await self.disconnect()
                pool.mark_stale()
                raise ConnectionError(f"{address[0]}:{address[1]} is a {role}, not the primary")
        self.generation = pool.generation

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            response = await super(SentinelManagedConnection, self).read_response(*args, **kwargs)
        except ReadOnlyError:
            if not self.connection_pool.is_master:
                raise
            # the node was demoted: every connection of this pool is on a replica now
            await self._leave("the primary was demoted to a replica")
        except ResponseError as exc:
            if not self.connection_pool.is_master or not str(exc).startswith("NOREPLICAS"):
                raise
            # min-replicas-to-write: a primary cut off from its replicas, or demoted
            await self._leave("the primary has too few replicas to take writes (NOREPLICAS)")
        return response

    async def _leave(self, why: str) -> NoReturn:
        await self.disconnect()
        self.connection_pool.mark_stale()
        raise ConnectionError(why)


class PrimarySSLConnection(PrimaryConnection, SSLConnection):
    pass


class PrimaryPool(SentinelConnectionPool):
    """A Sentinel pool whose connections all leave a primary once one of them has to."""

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        kwargs.setdefault(
            "connection_class",
            PrimarySSLConnection if kwargs.pop("ssl", False) else PrimaryConnection,
        )
        super().__init__(service_name, sentinel_manager, **kwargs)
        self.generation = 0
        _POOLS.add(self)

    def mark_stale(self) -> None:
        """Every connection open now is closed before its next use; the next connect
        asks the sentinels for the primary again."""
        self.generation += 1
        self.master_address = None

    async def get_connection(self, *args: Any, **options: Any) -> Any:
        connection = await super().get_connection()
        if connection.generation != self.generation:
            try:
                await connection.disconnect()
                await connection.connect()
            except BaseException:
                await self.release(connection)
                raise
        return connection

    async def release(self, connection: Any) -> None:
        if connection.generation != self.generation:
            await connection.disconnect()
        await super().release(connection)

    async def switch(self, address: tuple[str, int]) -> None:
        """The sentinels name a new primary: leave the old one now."""
        if self.master_address is not None and tuple(self.master_address) != tuple(address):
            log.warning(
                "primary %s moved to %s; dropping connections", self.master_address, address
            )
            self.mark_stale()
            await self.disconnect(inuse_connections=False)


class _Fenced:
    """For a plain URL (a managed service whose DNS name follows the primary): a
    connection that gets ``READONLY`` or ``NOREPLICAS`` closes, so it reconnects to
    wherever the name now points, and the command fails as a ``ConnectionError``."""

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().read_response(*args, **kwargs)  # type: ignore[misc]
        except ReadOnlyError:
            await self.disconnect()  # type: ignore[attr-defined]
            raise ConnectionError("the primary was demoted to a replica") from None
        except ResponseError as exc:
            if not str(exc).startswith("NOREPLICAS"):
                raise
            await self.disconnect()  # type: ignore[attr-defined]
            raise ConnectionError(
                "the primary has too few replicas to take writes (NOREPLICAS)"
            ) from None


def fence(pool: aioredis.ConnectionPool) -> aioredis.ConnectionPool:
    """Makes ``pool``'s connections leave a demoted primary (see ``_Fenced``)."""
    cls = pool.connection_class
    pool.connection_class = type(f"Fenced{cls.__name__}", (_Fenced, cls), {})
    return pool


def note_demoted(client: aioredis.Redis) -> None:
    """A sign that ``client``'s primary may no longer be one (a write its replicas did
    not confirm, ``NOREPLICAS``): its connections reconnect through the sentinels."""
    pool = client.connection_pool
    if isinstance(pool, PrimaryPool):
        pool.mark_stale()


async def watch_primary(sentinel: Sentinel, service: str, every_s: float) -> None:
    """Asks the sentinels for the primary every ``every_s`` and moves every pool of this
    process off an old one as soon as they name another."""
    try:
        while True:
            try:
                address = await sentinel.discover_master(service)
            except Exception:
                log.debug("no primary from the sentinels yet", exc_info=True)
            else:
                for pool in list(_POOLS):
                    if pool.service_name == service:
                        with contextlib.suppress(Exception):
                            await pool.switch(address)
            await asyncio.sleep(every_s)
    finally:
        for client in sentinel.sentinels:
            with contextlib.suppress(Exception):
                await client.aclose()
