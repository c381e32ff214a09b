"""Hypothesis strategies for JSON a client could send, and an oracle, written apart from
broker/core/jsonsafe.py, that says what the broker must refuse.

``json.dumps`` writes what these values hold the way a hostile client would: ``NaN`` and
``Infinity`` for non-finite floats, every digit of a huge integer, and ``\\udXXX``
escapes for lone surrogates.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import strategies as st

DEPTH = 64  # BROKER_MAX_JSON_DEPTH's default
SAFE_INTS = [2**63 - 1, 2**63, 2**64 - 1, -(2**63), 0]
UNSAFE_INTS = [2**64, -(2**63) - 1, 10**30, -(10**30)]

_text = st.text(max_size=12)
_surrogate_text = st.builds(
    lambda head, lone, tail: head + lone + tail,
    st.text(max_size=4),
    st.characters(categories=["Cs"]),
    st.text(max_size=4),
)
_unsafe = st.one_of(
    st.sampled_from(UNSAFE_INTS),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.integers(min_value=2**64, max_value=2**80),
    _surrogate_text,
)
_safe = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.sampled_from(SAFE_INTS),
    st.floats(allow_nan=False, allow_infinity=False),
    _text,
)
_scalars = st.one_of(_safe, _unsafe)
_keys = st.one_of(_text, _surrogate_text)


def _nest(depth: int, as_object: bool, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"k": value} if as_object else [value]
    return value


def _trees(leaves: st.SearchStrategy[Any], keys: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)
        ),
        max_leaves=12,
    )


def json_values() -> st.SearchStrategy[Any]:
    """Any JSON value, the unsafe ones included: trees that may hold unsafe values, trees
    that do not (so bodies are also taken), and chains nested around the limit or far
    past it."""
    kinds = {
        "any": _trees(_scalars, _keys),
        "safe": _trees(_safe, _text),
        "deep": st.builds(
            _nest,
            st.sampled_from([DEPTH - 1, DEPTH, DEPTH + 1, 300]),
            st.booleans(),
            _safe,
        ),
    }
    return st.sampled_from(["any", "any", "safe", "safe", "deep"]).flatmap(kinds.__getitem__)


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()


def oracle(value: Any, depth: int = 0) -> str | None:
    """Why the broker must refuse ``value`` (None: it must take it)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return None if -(2**63) <= value <= 2**64 - 1 else "integer"
    if isinstance(value, float):
        return None if math.isfinite(value) else "number"
    if isinstance(value, str):
        return "surrogate" if any(0xD800 <= ord(c) <= 0xDFFF for c in value) else None
    if depth + 1 > DEPTH:
        return "depth"
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in items:
        why = (oracle(key) if isinstance(key, str) else None) or oracle(child, depth + 1)
        if why:
            return why
    return None
