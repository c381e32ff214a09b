"""One connection factory for every Redis client: URL forms, TLS and bounded calls."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from broker.core import config
from broker.core.connections import RedisTarget, parse_url, redis_client
from broker.core.durable import min_replicas
from broker.core.settings import Settings
from tests.flow import answer, next_interrupt, start, wait_status
from tests.harness import Broker, wait_until
from tests.servers import RedisServer


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", RedisTarget(url="redis://127.0.0.1:6379/0", tls=False)),
        ("rediss://h:6380/2", RedisTarget(url="rediss://h:6380/2", tls=True)),
        (
            "redis+sentinel://s1:26379,s2:26380,[::1]:26381/mymaster/3",
            RedisTarget(
                url="redis+sentinel://s1:26379,s2:26380,[::1]:26381/mymaster/3",
                tls=False,
                db=3,
                sentinels=(("s1", 26379), ("s2", 26380), ("::1", 26381)),
                master="mymaster",
            ),
        ),
        (
            "rediss+sentinel://app:p%40ss@s1/primary",
            RedisTarget(
                url="rediss+sentinel://app:p%40ss@s1/primary",
                tls=True,
                username="app",
                password="p@ss",
                sentinels=(("s1", 26379),),
                master="primary",
            ),
        ),
    ],
)
def test_redis_urls_name_their_target(url: str, expected: RedisTarget) -> None:
    assert parse_url(url) == expected


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1:6379", "not supported"),
        ("redis+sentinel://s1:26379", "must name the primary"),
        ("redis+sentinel://s1:26379/m/x", "must be a number"),
        ("redis+sentinel://s1:notaport/m", "malformed sentinel address"),
        ("redis://127.0.0.1:99999/0", "malformed port"),
    ],
)
def test_an_unusable_url_is_refused_at_start_naming_the_fix(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        config.check(Settings(redis_url=url, auth="off"), "worker")


async def test_a_stalled_server_is_an_error_within_the_timeout_not_a_hang(
    tmp_path: Path,
) -> None:
    server = RedisServer(tmp_path).start()
    client = redis_client(Settings(redis_url=server.url, redis_timeout_s=0.5))
    try:
        assert await client.ping()
        server.pause()
        with pytest.raises(RedisTimeoutError):
            await client.get("anything")
    finally:
        server.resume()
        await client.aclose()
        server.stop()


def _certificate(where: Path) -> tuple[Path, Path]:
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_a_wait_longer_than_a_command_may_take_is_refused_at_start() -> None:
    url = "redis://127.0.0.1:6379/0"
    waits = Settings(redis_url=url, auth="off", redis_wait_timeout_ms=5000, redis_min_replicas=1)
    with pytest.raises(ValueError, match="BROKER_REDIS_WAIT_TIMEOUT_MS"):
        config.check(waits, "worker")
    # without replicas to wait for, no write waits: a short command timeout is fine
    config.check(Settings(redis_url=url, auth="off", redis_timeout_s=1), "worker")


@pytest.mark.parametrize(
    ("url", "replicas"),
    [
        ("redis://127.0.0.1:6379/0", 0),
        ("rediss://h:6380/0", 0),
        ("redis+sentinel://s1:26379,s2:26379/m/0", 1),
        ("rediss+sentinel://s1:26379/m/0", 1),
    ],
)
def test_writes_wait_for_a_replica_under_sentinel_by_default(url: str, replicas: int) -> None:
    assert min_replicas(Settings(redis_url=url)) == replicas
    assert min_replicas(Settings(redis_url=url, redis_min_replicas=2)) == 2


@pytest.mark.slow
def test_every_process_works_over_tls(tmp_path: Path) -> None:
    """rediss:// with a CA file: API, worker, saver, events and the queue all use TLS."""
    cert, key = _certificate(tmp_path)
    server = RedisServer(
        tmp_path / "redis",
        tls=True,
        args=(
            "--tls-cert-file", str(cert), "--tls-key-file", str(key),
            "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
        ),
    ).start()  # fmt: skip
    trusted = {"ssl_ca_certs": str(cert), "socket_timeout": 2}
    wait_until(lambda: _pings(server.url, trusted), "the TLS server to answer")
    b = Broker(server.url, "tls", tmp_path, BROKER_REDIS_CA_FILE=str(cert))
    try:
        b.start_worker()
        b.start_api()
        b.wait_ready()
        with httpx.Client(base_url=b.url, timeout=30) as api:
            run = start(api, "naming", {"messages": [{"role": "user", "content": "hi"}]})
            first = next_interrupt(api, run["run_id"])
            answer(api, first["id"], True)
            second = next_interrupt(api, run["run_id"], after=first["id"])
            answer(api, second["id"], "Ada")
            done = wait_status(api, run["run_id"], "succeeded", "failed")
            assert done["status"] == "succeeded", done
            assert "Ada" in done["output"]["final_message"]
            # the events followed live over TLS too
            with api.stream("GET", f"/runs/{run['run_id']}/events") as events:
                kinds = [
                    line.removeprefix("event: ")
                    for line in events.iter_lines()
                    if line.startswith("event: ")
                ]
            assert kinds[-1] == "run.succeeded", kinds
        # a client that does not trust the server's certificate is refused
        assert not _pings(server.url, {"socket_timeout": 2})
    finally:
        b.stop()
        server.stop()


def _pings(url: str, options: dict[str, object]) -> bool:
    client = redis.Redis.from_url(url, **options)  # type: ignore[arg-type]
    try:
        return bool(client.ping())
    except (RedisConnectionError, RedisTimeoutError):
        return False
    finally:
        client.close()
