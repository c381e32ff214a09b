"""Browser pages on other origins (Agent Inbox, a frontend on another host) may call the
API only when ``BROKER_CORS_ORIGINS`` names their origin (README, "LangGraph SDK and
Agent Inbox"); a preflight needs no key, and refusals are readable by the page."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from broker.core.settings import Settings
from tests.harness import Broker

pytestmark = pytest.mark.slow

INBOX = "https://inbox.example.test"
KEY = "k-cors-0123456789abcdef"


@pytest.fixture(scope="module")
def api(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    b = _broker(redis_url, tmp_path_factory.mktemp("cors"), f"{INBOX}, http://localhost:3000")
    try:
        b.start_api()
        with httpx.Client(base_url=b.url, timeout=30) as client:
            yield client
    finally:
        b.stop()


def _broker(redis_url: str, workdir: Path, origins: str) -> Broker:
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    key = {"id": "inbox", "key_sha256": digest, "scopes": ["admin"]}
    return Broker(
        redis_url,
        f"ibt{uuid.uuid4().hex[:10]}",
        workdir,
        BROKER_AUTH="on",
        BROKER_API_KEYS=json.dumps([key]),
        BROKER_CORS_ORIGINS=origins,
    )


def preflight(
    api: httpx.Client, origin: str, path: str = "/langgraph/threads/search"
) -> httpx.Response:
    return api.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def test_a_named_origin_may_call_the_api(api: httpx.Client) -> None:
    ok = preflight(api, INBOX)
    assert ok.status_code == 200, ok.text  # no key: a browser sends none on a preflight
    assert ok.headers["access-control-allow-origin"] == INBOX
    assert "POST" in ok.headers["access-control-allow-methods"]
    assert "authorization" in ok.headers["access-control-allow-headers"].lower()
    r = api.post(
        "/langgraph/threads/search",
        json={"status": "interrupted"},
        headers={"Origin": INBOX, "Authorization": f"Bearer {KEY}"},
    )
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == INBOX
    # a refusal is readable by the page too
    refused = api.get("/interrupts", headers={"Origin": INBOX})
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == INBOX
    assert "etag" in refused.headers["access-control-expose-headers"].lower()


def test_other_origins_get_no_grant(api: httpx.Client) -> None:
    other = preflight(api, "https://evil.example.test")
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers
    r = api.get("/healthz", headers={"Origin": "https://evil.example.test"})
    assert "access-control-allow-origin" not in r.headers


def test_without_the_setting_no_origin_is_granted(redis_url: str, tmp_path: Path) -> None:
    b = _broker(redis_url, tmp_path, "")
    try:
        b.start_api()
        with httpx.Client(base_url=b.url, timeout=30) as api:
            r = preflight(api, INBOX)
            assert "access-control-allow-origin" not in r.headers
            assert r.status_code in (401, 405)
    finally:
        b.stop()


@pytest.mark.parametrize(
    "bad", ["inbox.example.test", "https://inbox.example.test/path", "ftp://x"]
)
def test_a_setting_that_names_no_origin_stops_the_process(bad: str) -> None:
    with pytest.raises(ValueError, match="BROKER_CORS_ORIGINS"):
        Settings(cors_origins=bad)


def test_the_setting_lists_origins() -> None:
    parsed = Settings(cors_origins="https://a.example.test/, http://localhost:3000").cors_origins
    assert parsed == ["https://a.example.test", "http://localhost:3000"]
