"""schemathesis against a real API process and worker: every check, on a fixed seed.

The document fuzzed is the one the API serves, so what it promises (request schemas, status
codes, error shapes, headers, security) is what the running API does. Auth is on and
requests carry an admin key, so every gated route is reachable; schemathesis's auth
checks send requests without it and with a wrong one as well. Every operation in the
document is tested (the WebSocket ``/ws`` is not in it: OpenAPI does not describe
WebSockets; tests/test_live_events.py covers it).
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig

from broker.api.app import create_app
from broker.core import auth
from broker.core.settings import Settings
from tests.harness import Broker

pytestmark = pytest.mark.slow

KEY = "k-fuzz-" + uuid.uuid4().hex
SEED = 20261207
EXAMPLES = 15
STATEFUL_EXAMPLES = 15
# The run's SSE and the AG-UI stream follow a run live until it ends, which a run waiting
# for an answer never does: schemathesis stops reading after a few events, or after the
# stream's read timeout passes in silence (keep-alives are every 15 s), and checks what came.
STREAM_EVENTS = 5
STREAMS = ["/runs/{run_id}/events", "/agui/{agent_id}"]
# Positive data an endpoint may still refuse, for a reason no schema can state: a webhook
# URL must resolve to a public address and a secret must be random enough (422
# unsafe_webhook_url / invalid_request). Only these two operations, only this status.
WEBHOOK_CHECKS = {
    "positive_data_acceptance": {
        "expected-statuses": ["2xx", "3xx", 401, 403, 404, 409, 422, 429, "5xx"]
    }
}


def _config(*, auth_on: bool = True) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "max-stream-events": STREAM_EVENTS,
            "request-timeout": 30,
            "generation": {"max-examples": EXAMPLES, "deterministic": True},
            "checks": {"enabled": True},
            **({"auth": {"openapi": {"bearer": {"bearer": KEY}}}} if auth_on else {}),
            "operations": [
                {"include-path": STREAMS, "request-timeout": 5},
                {
                    "include-path": "/admin/webhooks",
                    "include-method": "POST",
                    "checks": WEBHOOK_CHECKS,
                },
                {
                    "include-path": "/admin/webhooks/{sid}",
                    "include-method": "PATCH",
                    "checks": WEBHOOK_CHECKS,
                },
                {
                    "include-path": LG_RUN_STARTS,
                    "include-method": "POST",
                    "checks": {"ensure_resource_availability": {"enabled": False}},
                },
            ],
        }
    )


# A LangGraph run on a thread names its assistant in the body: an unknown one is 404
# agent_not_found, which the resource check would take for the thread that was just made
# being gone. Only these operations, only that check.
LG_RUN_STARTS = [
    f"/langgraph/threads/{{thread_id}}/runs{tail}" for tail in ("", "/wait", "/stream")
]

KEYS = [{"id": "fuzz", "key_sha256": auth.digest(KEY), "scopes": [auth.ADMIN]}]


def _document() -> dict[str, Any]:
    """The document an API with these keys serves (checked against the served one below)."""
    settings = Settings(redis_url="redis://unused", auth="on", api_keys=KEYS)
    return create_app(settings).openapi()


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT, config=_config())


@pytest.fixture(scope="module")
def fuzzed(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    prefix = f"ibt{uuid.uuid4().hex[:10]}"
    with Broker(
        redis_url,
        prefix,
        tmp_path_factory.mktemp("fuzz"),
        BROKER_AUTH="on",
        BROKER_API_KEYS=json.dumps(KEYS),
        BROKER_LINK_SECRET=secrets.token_urlsafe(32),
    ).serving() as b:
        yield b


def test_the_fuzzed_document_is_the_served_one(fuzzed: Broker) -> None:
    served = httpx.get(f"{fuzzed.url}/openapi.json", timeout=30).json()
    assert served == json.loads(json.dumps(DOCUMENT))


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_every_operation_conforms(case: Any, fuzzed: Broker) -> None:
    case.call_and_validate(base_url=fuzzed.url)


def test_every_check_is_enabled() -> None:
    """All of schemathesis's checks but max_response_time, a timing limit left unset."""
    load_all_checks()
    operation = next(iter(schema.get_all_operations())).ok()
    config = schema.config.checks_config_for(operation=operation, phase="fuzzing")
    names = CHECKS.get_all_names()
    assert len(names) >= 14
    assert all(getattr(config, name).enabled for name in names), names


def _stateful(machine: Any, base_url: str) -> None:
    class Workflow(machine):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": base_url}

    Workflow.run(
        settings=settings(
            max_examples=STATEFUL_EXAMPLES,
            stateful_step_count=10,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
    )


def test_sequences_of_calls_conform(fuzzed: Broker) -> None:
    """Stateful: responses feed later requests through the links schemathesis infers."""
    _stateful(schema.as_state_machine(), fuzzed.url)


def test_sequences_of_calls_conform_with_auth_off(broker: Broker) -> None:
    """The shared test broker runs with auth off; its document declares no security."""
    settings_off = Settings(redis_url="redis://unused", auth="off")
    open_schema = schemathesis.openapi.from_dict(
        create_app(settings_off).openapi(), config=_config(auth_on=False)
    )
    _stateful(open_schema.as_state_machine(), broker.url)
