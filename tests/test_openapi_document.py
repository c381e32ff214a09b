"""The OpenAPI document itself: bodies declared, one error shape, security as the gate has it.

tests/test_openapi_fuzz.py checks the running API against this document; these tests
check what the document says, for an API with auth on and with auth off.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from broker.api.app import create_app
from broker.api.gate import is_open
from broker.core import auth, errors
from broker.core.settings import Settings
from broker.core.store import CURSOR_PATTERN, decode_cursor, encode_cursor

ERROR = {"$ref": "#/components/schemas/Error"}
KEYS = [{"id": "k", "key_sha256": auth.digest("k"), "scopes": [auth.ADMIN]}]
HTML_PAGES = {"/links/{token}"}
"""Action links answer browsers with HTML pages, whatever the status."""
NO_REDIS = {"/healthz", "/readyz", "/agents", "/auth/config", "/.well-known/jwks.json"}
"""Routes that never read Redis (readiness reports a failed ping in its own body)."""


def document(*, auth_on: bool) -> dict[str, Any]:
    settings = Settings(redis_url="redis://unused", auth="on" if auth_on else "off", api_keys=KEYS)
    return create_app(settings).openapi()


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in doc["paths"].items() for method, op in ops.items()]


@pytest.fixture(scope="module", params=[True, False], ids=["auth on", "auth off"])
def doc(request: pytest.FixtureRequest) -> dict[str, Any]:
    return document(auth_on=request.param)


def test_every_post_and_patch_declares_its_body(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    bodies = 0
    for path, method, op in operations(doc):
        if method not in ("post", "patch"):
            continue
        if path in (
            "/runs/{run_id}/cancel",
            "/interrupts/{interrupt_id}/withdraw",
            "/langgraph/threads/{thread_id}/runs/{run_id}/cancel",
        ):
            assert "requestBody" not in op  # the POSTs that read no body
            continue
        content = op["requestBody"]["content"]
        if path in HTML_PAGES:
            assert list(content) == ["application/x-www-form-urlencoded"]
            continue
        if path == "/slack/interactivity":  # Slack's own form: one field of JSON
            form = content["application/x-www-form-urlencoded"]["schema"]
            assert list(content) == ["application/x-www-form-urlencoded"]
            assert form["required"] == ["payload"] and op["requestBody"]["required"] is True
            continue
        ref = content["application/json"]["schema"]["$ref"]
        assert ref.rsplit("/", 1)[-1] in schemas, (path, ref)
        assert op["requestBody"]["required"] is True
        bodies += 1
    # start a run, resolve, resolve many, assign, AG-UI, create and change a webhook;
    # LangGraph's search assistants, create and search threads, update a thread's state,
    # create, wait, stream runs
    assert bodies == 14


def test_request_bodies_are_the_models_the_handlers_validate(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    start = schemas["StartRun"]
    assert start["required"] == ["agent_id"] and start["additionalProperties"] is False
    assert start["properties"]["thread_id"]["anyOf"][0]["pattern"]
    assert schemas["Resolve"]["required"] == ["value"]
    assert schemas["Resolve"]["properties"]["comment"]["anyOf"][0]["maxLength"] == 2000
    many = schemas["BulkResolve"]
    assert many["oneOf"] == [{"required": ["ids"]}, {"required": ["filter"]}]
    assert many["properties"]["ids"]["maxItems"] == 500
    assert many["properties"]["ids"]["uniqueItems"] is True
    assert schemas["Filter"]["minProperties"] == 1
    assert schemas["NewWebhook"]["properties"]["url"]["pattern"].startswith("^https?://")
    agui = schemas["RunAgentInput"]
    assert {"threadId", "runId", "messages"} <= set(agui["required"])
    # a tagged union needs its tag, though pydantic's schema leaves a defaulted one out
    for name in ("UserMessage", "AssistantMessage", "ToolMessage", "ActivityMessage"):
        assert "role" in schemas[name]["required"], name


def test_every_error_response_is_the_error_shape(doc: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in str(doc)
    detail = doc["components"]["schemas"]["ErrorDetail"]
    assert detail["required"] == ["code", "message"] and detail["additionalProperties"]
    assert doc["components"]["schemas"]["Error"]["required"] == ["error"]
    for path, method, op in operations(doc):
        for status, response in op["responses"].items():
            if not status.startswith(("4", "5")):
                continue
            content = response["content"]
            if path in HTML_PAGES and status != "503":
                assert list(content) == ["text/html"], (path, method, status)
            elif path == "/readyz":
                assert status == "503"
            else:
                assert content == {"application/json": {"schema": ERROR}}, (path, method, status)


def test_error_responses_name_their_codes() -> None:
    doc = document(auth_on=True)
    resolve = doc["paths"]["/interrupts/{interrupt_id}/resolve"]["post"]["responses"]
    for err in (
        errors.InvalidJSON,
        errors.PayloadTooLarge,
        errors.UnsupportedMediaType,
        errors.InvalidRequest,
        errors.InvalidAnswer,
        errors.InterruptNotFound,
        errors.AlreadyResolved,
        errors.InterruptClosed,
        errors.InterruptExpired,
        errors.Forbidden,
    ):
        assert f"`{err.code}`" in resolve[str(err.status_code)]["description"], err.code
    start = doc["paths"]["/runs"]["post"]["responses"]
    assert {"400", "401", "403", "404", "409", "413", "415", "422", "503"} <= set(start)


def test_redis_unavailable_is_documented_with_retry_after(doc: dict[str, Any]) -> None:
    for path, method, op in operations(doc):
        if path in NO_REDIS:
            assert "redis_unavailable" not in str(op["responses"].get("503", "")), path
            continue
        unavailable = op["responses"]["503"]
        assert "`redis_unavailable`" in unavailable["description"], (path, method)
        assert unavailable["headers"]["Retry-After"]["schema"]["type"] == "integer"


def test_security_and_401_follow_the_auth_gate() -> None:
    on, off = document(auth_on=True), document(auth_on=False)
    assert set(on["components"]["securitySchemes"]) == {"bearer", "apiKey", "apiKeyQuery"}
    assert "securitySchemes" not in off["components"]
    gated = 0
    for path, _method, op in operations(on):
        if is_open(path):
            assert op["security"] == [] and "401" not in op["responses"], path
            continue
        gated += 1
        names = [name for requirement in op["security"] for name in requirement]
        query = ["apiKeyQuery"] if path == "/runs/{run_id}/events" else []
        assert names == ["bearer", "apiKey", *query], path
        assert op["responses"]["401"]["content"] == {"application/json": {"schema": ERROR}}
    assert gated >= 18
    for path, method, op in operations(off):
        assert not op.get("security"), path
        assert "401" not in op["responses"] and "403" not in op["responses"], (path, method)


def test_403_wherever_a_scope_is_checked() -> None:
    doc = document(auth_on=True)
    for path, method, op in operations(doc):
        scoped = not is_open(path) and path != "/agents"
        assert ("403" in op["responses"]) == scoped, (path, method)


def test_query_parameters_carry_the_constraints_the_api_enforces() -> None:
    doc = document(auth_on=True)
    for path, default in (("/interrupts", "asc"), ("/runs", "desc")):
        params = {p["name"]: p for p in doc["paths"][path]["get"]["parameters"]}
        assert params["limit"]["schema"]["minimum"] == 1
        assert params["limit"]["schema"]["maximum"] == 500
        assert params["order"]["schema"]["enum"] == ["asc", "desc"]
        assert params["order"]["schema"]["default"] == default
        assert params["cursor"]["schema"]["pattern"] == CURSOR_PATTERN
    statuses = doc["components"]["schemas"]["InterruptStatus"]["enum"]
    assert statuses == ["pending", "accepted", "resolved", "expired", "cancelled"]
    events = {p["name"]: p for p in doc["paths"]["/runs/{run_id}/events"]["get"]["parameters"]}
    assert events["after"]["schema"]["pattern"] == events["last-event-id"]["schema"]["pattern"]


def test_every_cursor_the_pattern_allows_is_accepted_and_no_other() -> None:
    for cursor in ("", "0", "7", "123456789012345", encode_cursor(42.0)):
        assert re.search(CURSOR_PATTERN, cursor)
        decode_cursor(cursor)
    for cursor in ("1234567890123456", "-1", "1.5", "1e3", "abc", " 1", "1\n", "٣"):
        assert not re.search(CURSOR_PATTERN, cursor) or cursor.endswith("\n")
        with pytest.raises(errors.InvalidCursor):
            decode_cursor(cursor)


def test_405_is_documented_with_allow() -> None:
    allowed = document(auth_on=True)["components"]["responses"]["MethodNotAllowed"]
    assert allowed["headers"]["Allow"]["required"] is True
    assert allowed["content"] == {"application/json": {"schema": ERROR}}


def test_405_allows_every_method_the_path_serves(api: httpx.Client) -> None:
    for path, methods in (
        ("/runs", "GET, POST"),
        ("/links/some-token", "GET, POST"),
        ("/admin/webhooks/wh_1", "DELETE, GET, PATCH"),
        ("/healthz", "GET"),
    ):
        r = api.request("PUT", path)
        assert r.status_code == 405, (path, r.text)
        assert r.headers["allow"] == methods, path
        assert r.json()["error"]["code"] == "method_not_allowed"


def test_the_api_serves_this_document(api: httpx.Client) -> None:
    """The test broker runs with auth off: its document has no security at all."""
    served = api.get("/openapi.json").json()
    assert served == document(auth_on=False)
    assert api.get("/docs").status_code == 200
