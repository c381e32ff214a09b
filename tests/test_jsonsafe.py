"""The strict JSON parser, id and stream id shapes, and cursors: what clients send is
refused before it is stored when another part of the broker could not carry it."""

from __future__ import annotations

import base64
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from broker.core import errors, ids, jsonsafe
from broker.core.store.reads import decode_cursor, encode_cursor
from tests.jsonfuzz import DEPTH, json_values, oracle


@pytest.mark.parametrize(
    ("text", "problem", "path"),
    [
        ('{"a": [1, NaN]}', "NaN", "/a/1"),
        ('{"a": Infinity}', "Infinity", "/a"),
        ("[-Infinity]", "-Infinity", "/0"),
        ('{"a": {"b/c~": 1e400}}', "finite", "/a/b~1c~0"),
        ('{"n": 18446744073709551616}', "64 bits", "/n"),
        ('{"n": -9223372036854775809}', "64 bits", "/n"),
        ("1" * 5000, "64 bits", ""),
        ('{"s": "\\ud800"}', "surrogate", "/s"),
        ('["ok", "\\udfff tail"]', "surrogate", "/1"),
        ('{"o": {"\\udc00": 1}}', "key", "/o"),
        ("[" * (DEPTH + 1) + "]" * (DEPTH + 1), "deeper than 64", "/0" * DEPTH),
        ("[" * 100_000 + "]" * 100_000, "deeper than 64", ""),
    ],
)
def test_values_other_parts_cannot_carry_are_refused_with_where(
    text: str, problem: str, path: str
) -> None:
    with pytest.raises(jsonsafe.UnsafeJSON) as caught:
        jsonsafe.parse(text.encode(), DEPTH)
    assert problem in caught.value.problem
    assert caught.value.path == path


@pytest.mark.parametrize(
    "value",
    [
        2**64 - 1,
        -(2**63),
        1.7976931348623157e308,
        "😀 \u00e9",
        "\\ud800 is text, not an escape",
        {"nested": [[[]]], "": None, "t": True},
        json.loads("[" * DEPTH + "]" * DEPTH),
    ],
)
def test_values_at_the_limits_are_taken_unchanged(value: Any) -> None:
    assert jsonsafe.parse(json.dumps(value).encode(), DEPTH) == value


def test_text_that_is_not_utf8_or_not_json_is_not_json() -> None:
    # a surrogate encoded as UTF-8 bytes is not UTF-8; json.loads(bytes) would take it
    with pytest.raises(UnicodeDecodeError):
        jsonsafe.parse(b'"\xed\xa0\x80"', DEPTH)
    with pytest.raises(json.JSONDecodeError):
        jsonsafe.parse(b'{"a": ', DEPTH)


@settings(
    max_examples=400,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(json_values())
def test_parse_refuses_exactly_what_the_oracle_refuses(value: Any) -> None:
    text = json.dumps(value)  # NaN, Infinity, big integers and \udXXX escapes as written
    expected = oracle(value)
    event(expected or "taken")
    if expected is None:
        parsed = jsonsafe.parse(text.encode(), DEPTH)
        assert json.dumps(parsed) == text
    else:
        with pytest.raises(jsonsafe.UnsafeJSON):
            jsonsafe.parse(text.encode(), DEPTH)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("3f0c1a52-8d4e-4c1b-9a57-0d8e3c2b1a90", True),
        ("thread-1.a_b~c", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("", False),
        ("a:b", False),
        ("run:interrupts", False),
        ("a/b", False),
        ("a b", False),
        ("a\n", False),
        ("é", False),
        ("x:audit", False),
    ],
)
def test_ids_are_url_unreserved_characters_without_key_separators(value: str, ok: bool) -> None:
    assert ids.is_id(value) is ok


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("0", (0, 0)),
        ("1700000000000-3", (1700000000000, 3)),
        ("18446744073709551615-18446744073709551614", (2**64 - 1, 2**64 - 2)),
        ("18446744073709551615-18446744073709551615", None),
        ("18446744073709551616-0", None),
        ("99999999999999999999999-0", None),
        ("-5", None),
        ("5-", None),
        ("+5", None),
        (" 5", None),
        ("5_0", None),
        ("١٢", None),
        ("5-1-2", None),
        ("$", None),
    ],
)
def test_stream_ids_are_what_redis_takes_as_a_cursor(
    value: str, parsed: tuple[int, int] | None
) -> None:
    assert ids.stream_id(value) == parsed


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        *("%%%", _b64("nan"), _b64("inf"), _b64("-inf"), _b64("1e400"), "é", "A" * 65),
        *("nan", "inf", "-1", "1e5", "1.5", " 1", "1 ", "+1", "١٢", "1" * 16),
    ],
)
def test_cursors_this_server_could_not_have_issued_are_refused(cursor: str) -> None:
    with pytest.raises(errors.InvalidCursor):
        decode_cursor(cursor)


@given(st.integers(min_value=0, max_value=10**15 - 1))
@settings(max_examples=100, derandomize=True, database=None)
def test_every_issued_cursor_decodes_to_its_score(score: int) -> None:
    decoded = decode_cursor(encode_cursor(float(score)))
    assert math.isfinite(decoded) and decoded == score
