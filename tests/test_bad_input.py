"""Invariant 6 of docs/design.md, against real processes: bad input never gets a 5xx and
never changes state. Each class of bad input gets its 4xx with the JSON error shape and
leaves every key under the prefix as it was; then every route that takes a body, and
every id, cursor and event id a client sends, is fuzzed with hypothesis.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import redis
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect

from broker.core import links, signing
from broker.core.keys import Keys
from broker.core.records import InterruptRecord
from broker.core.settings import Settings
from tests import state
from tests.flow import next_interrupt, start, wait_status
from tests.harness import Broker
from tests.jsonfuzz import encode, json_values, oracle

pytestmark = pytest.mark.slow

LINK_SECRET = signing.new_secret()
JSON = {"content-type": "application/json"}
FUZZ = settings(
    max_examples=40,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass
class Target:
    broker: Broker
    redis_url: str
    run_id: str  # interrupted, with ``iid`` pending
    iid: str
    ended_run_id: str  # cancelled: its event stream ends
    typed_iid: str  # pending, with an answer schema
    token: str  # an action link to answer ``typed_iid`` with a typed answer
    sid: str  # a managed webhook subscription
    thread: str  # an AG-UI thread

    @property
    def prefix(self) -> str:
        return self.broker.env["BROKER_KEY_PREFIX"]


def _link_token(redis_url: str, broker: Broker, iid: str) -> str:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        h = InterruptRecord.from_hash(
            dict(r.hgetall(Keys(broker.env["BROKER_KEY_PREFIX"]).interrupt(iid)))
        )
    finally:
        r.close()
    [link] = links.mint(Settings(link_secret=LINK_SECRET, public_url=broker.url), h)
    return str(link["url"]).rsplit("/", 1)[1]


@pytest.fixture(scope="module")
def target(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    p = f"ibt{uuid.uuid4().hex[:10]}"
    b = Broker(
        redis_url,
        p,
        tmp_path_factory.mktemp("badinput"),
        BROKER_LINK_SECRET=LINK_SECRET,
        BROKER_WEBHOOK_ALLOW_PRIVATE="1",
    )
    b.env["BROKER_PUBLIC_URL"] = b.url
    with b.serving(), httpx.Client(base_url=b.url, timeout=30) as api:
        run = start(api, "counter", {})
        iid = next_interrupt(api, run["run_id"])["id"]
        ended = start(api, "counter", {})
        next_interrupt(api, ended["run_id"])
        assert api.post(f"/runs/{ended['run_id']}/cancel").status_code == 200
        typed = start(api, "typed", {})
        typed_iid = next_interrupt(api, typed["run_id"])["id"]
        hook = api.post(
            "/admin/webhooks",
            json={"url": "http://127.0.0.1:9/hook", "agents": ["nobody"], "events": ["run.failed"]},
        )
        assert hook.status_code == 201, hook.text
        yield Target(
            broker=b,
            redis_url=redis_url,
            run_id=run["run_id"],
            iid=iid,
            ended_run_id=ended["run_id"],
            typed_iid=typed_iid,
            token=_link_token(redis_url, b, typed_iid),
            sid=hook.json()["id"],
            thread=str(uuid.uuid4()),
        )


@pytest.fixture(scope="module")
def api(target: Target) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=target.broker.url, timeout=60) as client:
        yield client


def _snapshot(t: Target) -> dict[Any, Any]:
    """Every key under the prefix with its value, less the audit log (refusals are
    logged by design)."""
    return state.snapshot(t.redis_url, t.prefix, audit=False)


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def _body(text: str) -> dict[str, Any]:
    return {"content": text.encode(), "headers": JSON}


def _answer(value: str) -> dict[str, Any]:
    return _body('{"value": ' + value + "}")


def _input(value: str) -> dict[str, Any]:
    return _body('{"agent_id": "counter", "input": ' + value + "}")


# (name, method, path template, request kwargs, status, code). Paths name {run}, {iid},
# {ended}, {sid}: the target's ids.
CLASSES: list[tuple[str, str, str, dict[str, Any], int, str]] = [
    # nesting depth: the case that was once stored as accepted while the client got 500
    ("answer nested 300 deep", "post", "/interrupts/{iid}/resolve",
     _answer(_deep(300)), 422, "invalid_json_value"),
    ("answer nested 65 deep", "post", "/interrupts/{iid}/resolve",
     _answer(_deep(64)), 422, "invalid_json_value"),
    ("input nested past the parser", "post", "/runs",
     _input(_deep(50_000)), 422, "invalid_json_value"),
    # non-finite numbers
    ("NaN in an answer", "post", "/interrupts/{iid}/resolve",
     _answer("NaN"), 422, "invalid_json_value"),
    ("Infinity in a run input", "post", "/runs",
     _input('{"answer": Infinity}'), 422, "invalid_json_value"),
    ("1e400 in AG-UI state", "post", "/agui/counter",
     _body('{"threadId": "t1", "runId": "r1", "messages": [], "tools": [], "context": [],'
           ' "forwardedProps": {}, "state": {"x": 1e400}}'), 422, "invalid_json_value"),
    ("-Infinity in a webhook", "post", "/admin/webhooks",
     _body('{"url": "http://127.0.0.1:9/x", "description": -Infinity}'), 422, "invalid_json_value"),
    # integers beyond 64 bits
    ("2**64 in an answer", "post", "/interrupts/{iid}/resolve",
     _answer("18446744073709551616"), 422, "invalid_json_value"),
    ("-2**63-1 in a run input", "post", "/runs",
     _input('{"answer": -9223372036854775809}'), 422, "invalid_json_value"),
    ("5000 digits in a webhook change", "patch", "/admin/webhooks/{sid}",
     _body('{"description": ' + "9" * 5000 + "}"), 422, "invalid_json_value"),
    # lone surrogates, in values and keys
    ("lone surrogate in an answer", "post", "/interrupts/{iid}/resolve",
     _answer('"\\ud800"'), 422, "invalid_json_value"),
    ("lone surrogate in a key", "post", "/runs",
     _input('{"\\udc00": 1}'), 422, "invalid_json_value"),
    ("lone surrogate in AG-UI", "post", "/agui/counter",
     _body('{"threadId": "t1", "runId": "\\udfff", "messages": [], "tools": [], "context": [],'
           ' "state": {}, "forwardedProps": {}}'), 422, "invalid_json_value"),
    ("surrogate as UTF-8 bytes", "post", "/interrupts/{iid}/resolve",
     {"content": b'{"value": "\xed\xa0\x80"}', "headers": JSON}, 400, "invalid_json"),
    # malformed cursors
    ("cursor of NaN", "get", "/interrupts?cursor=bmFu", {}, 400, "invalid_cursor"),
    ("cursor of inf", "get", "/runs?cursor=aW5m", {}, 400, "invalid_cursor"),
    ("cursor of 1e400", "get", "/runs?cursor=MWU0MDA", {}, 400, "invalid_cursor"),
    ("cursor not base64", "get", "/interrupts?cursor=%C3%A9%00", {}, 400, "invalid_cursor"),
    ("cursor too long", "get", "/runs?cursor=" + "A" * 500, {}, 400, "invalid_cursor"),
    # ids that would name other keys, or cannot exist
    ("run id naming its index", "get", "/runs/{run}:interrupts", {}, 404, "run_not_found"),
    ("run id naming its open set", "post", "/runs/{run}:open/cancel", {}, 404, "run_not_found"),
    ("run id events", "get", "/runs/{run}:interrupts/events", {}, 404, "run_not_found"),
    ("interrupt id with a suffix", "get", "/interrupts/{iid}:audit", {}, 404,
     "interrupt_not_found"),
    # a slash never reaches the store: it is a path no route has
    ("interrupt id with a slash", "get", "/interrupts/{iid}%2Faudit/audit", {}, 404, "not_found"),
    ("answer to an id with a suffix", "post", "/interrupts/{iid}:x/resolve",
     {"json": {"value": 1}}, 404, "interrupt_not_found"),
    ("very long interrupt id", "get", "/interrupts/" + "a" * 5000, {}, 404, "interrupt_not_found"),
    ("webhook id with a suffix", "get", "/admin/webhooks/{sid}:deliveries/deliveries", {}, 404,
     "webhook_not_found"),
    ("thread id naming its lock", "post", "/runs",
     {"json": {"agent_id": "counter", "thread_id": "t:active"}}, 422, "invalid_request"),
    ("thread id too long", "post", "/runs",
     {"json": {"agent_id": "counter", "thread_id": "t" * 129}}, 422, "invalid_request"),
    ("thread filter with a colon", "get", "/runs?thread_id=a:b", {}, 422, "invalid_request"),
    ("run filter with a colon", "get", "/interrupts?run_id={run}:open", {}, 422, "invalid_request"),
    ("AG-UI thread id with a slash", "post", "/agui/counter",
     {"json": {"threadId": "a/b", "runId": "r", "messages": [], "tools": [], "context": [],
               "state": {}, "forwardedProps": {}}}, 422, "invalid_request"),
    # a change that would store a subscription no read could load
    ("null events in a webhook change", "patch", "/admin/webhooks/{sid}",
     {"json": {"events": None}}, 422, "invalid_request"),
    ("null url in a webhook change", "patch", "/admin/webhooks/{sid}",
     {"json": {"url": None}}, 422, "invalid_request"),
    # malformed Last-Event-ID and after=
    ("Last-Event-ID past 64 bits", "get", "/runs/{ended}/events",
     {"headers": {"Last-Event-ID": "99999999999999999999999-0"}}, 400, "invalid_cursor"),
    ("Last-Event-ID of the largest id", "get", "/runs/{ended}/events",
     {"headers": {"Last-Event-ID": "18446744073709551615-18446744073709551615"}}, 400,
     "invalid_cursor"),
    ("Last-Event-ID with a sign", "get", "/runs/{ended}/events",
     {"headers": {"Last-Event-ID": "+5-1"}}, 400, "invalid_cursor"),
    ("Last-Event-ID of three parts", "get", "/runs/{ended}/events",
     {"headers": {"Last-Event-ID": "1-2-3"}}, 400, "invalid_cursor"),
    ("after= with an underscore", "get", "/runs/{ended}/events?after=1_000", {}, 400,
     "invalid_cursor"),
]  # fmt: skip


def _path(t: Target, template: str) -> str:
    return template.format(run=t.run_id, iid=t.iid, ended=t.ended_run_id, sid=t.sid)


@pytest.mark.parametrize(
    ("name", "method", "path", "kwargs", "status", "code"), CLASSES, ids=[c[0] for c in CLASSES]
)
def test_each_class_of_bad_input_gets_its_4xx_and_changes_nothing(
    target: Target,
    api: httpx.Client,
    name: str,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    code: str,
) -> None:
    before = _snapshot(target)
    r = api.request(method, _path(target, path), **kwargs)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    if code == "invalid_json_value":
        assert isinstance(error["path"], str)
    assert _snapshot(target) == before
    assert api.get(f"/interrupts/{target.iid}").json()["status"] == "pending"
    if path == "/interrupts/{iid}/resolve":
        trail = api.get(f"/interrupts/{target.iid}/audit").json()["items"]
        assert trail[-1]["outcome"] == code


def test_the_error_names_the_problem_and_where_it_is(target: Target, api: httpx.Client) -> None:
    r = api.post(
        "/runs",
        content=b'{"agent_id": "counter", "input": {"a/b": [0, {"n": NaN}]}}',
        headers=JSON,
    )
    error = r.json()["error"]
    assert error["path"] == "/input/a~1b/1/n"
    assert "NaN" in error["message"] and "/input/a~1b/1/n" in error["message"]


@pytest.mark.parametrize(
    "after", ["99999999999999999999999-0", "18446744073709551615-18446744073709551615", "x", "1-"]
)
def test_a_websocket_with_a_malformed_after_gets_an_error_frame(target: Target, after: str) -> None:
    async def first_frame() -> tuple[dict[str, Any], int | None]:
        url = target.broker.url.replace("http", "ws", 1) + f"/ws?after={quote(after)}"
        async with connect(url) as ws:
            frame = json.loads(await ws.recv())
            await ws.wait_closed()
            return frame, ws.close_code

    frame, close_code = asyncio.run(first_frame())
    assert (frame["type"], frame["code"]) == ("error", "invalid_cursor")
    assert close_code == 1008


# -- fuzzing ------------------------------------------------------------------------------


def _strict(text: str) -> Any:
    """json.loads that refuses NaN and Infinity, as every client outside Python does."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} in a frame")

    return json.loads(text, parse_constant=refuse)


def _sse_frames(text: str) -> list[Any]:
    """The data of each SSE frame, strict JSON. SSE lines end at CR, LF or CRLF only
    (not at U+2028 and the like, which str.splitlines also splits at)."""
    lines = re.split(r"\r\n|\r|\n", text)
    return [_strict(line[5:]) for line in lines if line.startswith("data:")]


def _followed_until(api: httpx.Client, run_id: str, event: str) -> list[Any]:
    """The run's SSE frames up to ``event`` (or its end), each strict JSON."""
    frames: list[Any] = []
    pending = ""
    with api.stream("GET", f"/runs/{run_id}/events") as r:
        assert r.status_code == 200
        for chunk in r.iter_text():
            *lines, pending = (pending + chunk).split("\n")  # the broker ends lines with LF
            for line in lines:
                if line.startswith("data:"):
                    frames.append(_strict(line[5:]))
                    if frames[-1]["type"] == event:
                        return frames
    return frames


def _check(r: httpx.Response, sent: Any) -> None:
    """The properties of every JSON body route: never 5xx; every 4xx has the error shape;
    a body holding what the broker does not take is refused as such, before anything else."""
    assert r.status_code < 500, r.text
    why = oracle(sent)
    if r.status_code >= 400:
        error = r.json()["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str)
        event(f"{r.status_code} {error['code']} ({why or 'safe'})")
    else:
        event(f"{r.status_code}")
    if why is not None:
        assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_json_value"), (
            why,
            r.text,
        )


def _with(template: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
    return {**template, field: value}


def _bodies(template: dict[str, Any], *fields: str) -> st.SearchStrategy[Any]:
    """The whole body arbitrary, or one field of a good body (or an extra one) arbitrary."""
    return st.one_of(
        json_values(),
        st.builds(_with, st.just(template), st.sampled_from([*template, *fields]), json_values()),
    )


@FUZZ
@given(
    body=st.one_of(
        _bodies({"agent_id": "counter", "input": {}}, "thread_id", "metadata", "unknown"),
        # the value goes all the way: run input, events, the graph's checkpoint
        st.builds(lambda v: {"agent_id": "counter", "input": {"answer": v}}, json_values()),
    )
)
def test_fuzz_start_run(target: Target, api: httpx.Client, body: Any) -> None:
    r = api.post("/runs", content=encode(body), headers=JSON)
    _check(r, body)
    if r.status_code == 202:
        run_id = r.json()["run_id"]
        # taken means carried: in the run's events, and through the graph's checkpoint
        frames = _followed_until(api, run_id, "run.interrupted")
        assert frames[0]["data"]["input"] == body["input"]
        if isinstance(body["input"], dict) and set(body["input"]) <= {"answer"}:
            assert frames[-1]["type"] == "run.interrupted", frames[-1]
        assert api.get(f"/runs/{run_id}").status_code == 200
        assert api.get("/runs", params={"agent_id": "counter"}).status_code == 200
        assert api.post(f"/runs/{run_id}/cancel").status_code in (200, 409)


@dataclass
class _Waiting:
    run_id: str
    iid: str


_waiting: list[_Waiting] = []


@FUZZ
@given(body=_bodies({"value": True, "resolved_by": "fuzz"}))
def test_fuzz_resolve(target: Target, api: httpx.Client, body: Any) -> None:
    if not _waiting:
        run = start(api, "counter", {})
        _waiting.append(_Waiting(run["run_id"], next_interrupt(api, run["run_id"])["id"]))
    w = _waiting[-1]
    r = api.post(f"/interrupts/{w.iid}/resolve", content=encode(body), headers=JSON)
    _check(r, body)
    if r.status_code == 200:
        _waiting.pop()
        # accepted means readable everywhere, and resumed without failing
        assert api.get(f"/interrupts/{w.iid}").json()["resolution"]["value"] == body["value"]
        assert api.get("/interrupts", params={"status": "resolved"}).status_code == 200
        assert api.get(f"/interrupts/{w.iid}/audit").status_code == 200
        assert wait_status(api, w.run_id, "succeeded", "failed")["status"] == "succeeded"
        _sse_frames(api.get(f"/runs/{w.run_id}/events").text)


AGUI = {
    "threadId": "agui-fuzz",
    "runId": "r1",
    "messages": [],
    "tools": [],
    "context": [],
    "state": {},
    "forwardedProps": {},
}


@FUZZ
@given(
    body=st.one_of(
        _bodies(AGUI, "resume", "parentRunId"),
        # a new thread each time: the state is the run's input, carried to its checkpoint
        st.builds(
            lambda v: {**AGUI, "threadId": str(uuid.uuid4()), "state": {"answer": v}},
            json_values(),
        ),
    )
)
def test_fuzz_agui(target: Target, api: httpx.Client, body: Any) -> None:
    r = api.post("/agui/counter", content=encode(body), headers=JSON)
    _check(r, body)
    if r.status_code == 200:
        frames = _sse_frames(r.text)
        assert frames[0]["type"] == "RUN_STARTED"
        assert frames[-1]["type"] in ("RUN_FINISHED", "RUN_ERROR")


@FUZZ
@given(
    body=_bodies(
        {"url": "http://127.0.0.1:9/hook", "agents": ["nobody"], "events": ["run.failed"]},
        "types",
        "secret",
        "description",
        "enabled",
    )
)
def test_fuzz_create_webhook(target: Target, api: httpx.Client, body: Any) -> None:
    r = api.post("/admin/webhooks", content=encode(body), headers=JSON)
    _check(r, body)
    if r.status_code == 201:
        sid = r.json()["id"]
        assert api.get(f"/admin/webhooks/{sid}").status_code == 200
        assert api.delete(f"/admin/webhooks/{sid}").status_code == 204


@FUZZ
@given(body=_bodies({"description": "fuzz", "enabled": False}, "url", "events", "agents", "types"))
def test_fuzz_change_webhook(target: Target, api: httpx.Client, body: Any) -> None:
    r = api.patch(f"/admin/webhooks/{target.sid}", content=encode(body), headers=JSON)
    _check(r, body)
    assert api.get("/admin/webhooks").status_code == 200


@FUZZ
@given(
    answer=st.one_of(json_values().map(lambda v: json.dumps(v)), st.text(max_size=40)),
    raw=st.one_of(st.none(), st.binary(max_size=64)),
    ctype=st.sampled_from(
        ["application/x-www-form-urlencoded", "application/json", "", "text/plain"]
    ),
)
def test_fuzz_action_link(
    target: Target, api: httpx.Client, answer: str, raw: bytes | None, ctype: str
) -> None:
    content = raw if raw is not None else str(httpx.QueryParams({"answer": answer})).encode()
    r = api.post(f"/links/{target.token}", content=content, headers={"content-type": ctype})
    assert r.status_code < 500, r.text
    assert r.headers["content-type"].startswith("text/html")
    # the typed interrupt takes only a profile: nothing the fuzz sends is one
    assert api.get(f"/interrupts/{target.typed_iid}").json()["status"] == "pending"


_ids = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["x:audit", "a" * 200, ".", "..", "%00", "a/b", " ", "\x00", "é"]),
)


def _segment(value: str) -> str:
    return quote(value, safe="").replace(".", "%2E") or "%20"


@FUZZ
@given(
    value=_ids,
    route=st.sampled_from(
        [
            ("get", "/runs/{}"),
            ("post", "/runs/{}/cancel"),
            ("get", "/runs/{}/events"),
            ("get", "/interrupts/{}"),
            ("get", "/interrupts/{}/audit"),
            ("post", "/interrupts/{}/resolve"),
            ("get", "/admin/webhooks/{}"),
            ("get", "/admin/webhooks/{}/deliveries"),
            ("patch", "/admin/webhooks/{}"),
            ("delete", "/admin/webhooks/{}"),
            ("get", "/links/{}"),
            ("get", "/interrupts?cursor={}"),
            ("get", "/runs?cursor={}"),
            ("get", "/interrupts?thread_id={}"),
            ("get", "/interrupts?run_id={}"),
            ("get", "/interrupts?agent_id={}"),
            ("get", "/interrupts?type={}"),
            ("get", "/runs?thread_id={}"),
            ("get", "/runs?agent_id={}"),
        ]
    ),
)
def test_fuzz_ids_and_cursors(
    target: Target, api: httpx.Client, value: str, route: tuple[str, str]
) -> None:
    method, template = route
    writes = method != "get"
    before = _snapshot(target) if writes else None
    kwargs: dict[str, Any] = {"json": {"value": 1}} if method in ("post", "patch") else {}
    r = api.request(method, template.format(_segment(value)), **kwargs)
    assert r.status_code < 500, r.text
    if r.status_code >= 400 and not template.startswith("/links/"):
        assert isinstance(r.json()["error"]["code"], str)
    if writes:
        assert r.status_code >= 400, r.text  # no such run, interrupt or subscription
        assert _snapshot(target) == before


@FUZZ
@given(
    value=st.one_of(
        st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=50),
        st.from_regex(r"[0-9]{1,25}(-[0-9]{1,25})?", fullmatch=True),
    )
)
def test_fuzz_last_event_id(target: Target, api: httpx.Client, value: str) -> None:
    r = api.get(f"/runs/{target.ended_run_id}/events", headers={"Last-Event-ID": value})
    assert r.status_code in (200, 400), r.text
    if r.status_code == 400:
        assert r.json()["error"]["code"] == "invalid_cursor"
    else:
        _sse_frames(r.text)
