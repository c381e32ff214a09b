"""Strict JSON for what clients send: only values every part of the broker can carry.

Python's ``json`` accepts more than JSON: ``NaN`` and ``Infinity`` (and ``1e400``, which
becomes infinity), integers of any size, lone UTF-16 surrogates (``"\\ud800"``) and
nesting as deep as the interpreter's recursion allows. Each of those parses, is stored,
and then breaks something later: a JSON encoder in an SSE or WebSocket frame, Redis's
UTF-8, the checkpoint serializer's 64-bit integers, a recursive encoder or validator.
``parse`` refuses them at the door, naming the problem and where it is (a JSON pointer).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

INT_MIN = -(2**63)
"""Smallest integer accepted (signed 64-bit)."""
INT_MAX = 2**64 - 1
"""Largest integer accepted (unsigned 64-bit)."""
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTAINERS = (dict, list)
_MAX_PATH = 500  # longer pointers are cut short in messages


class UnsafeJSON(ValueError):
    """Valid syntax, but a value the broker does not take; ``path`` is a JSON pointer."""

    def __init__(self, problem: str, path: str = "") -> None:
        if len(path) > _MAX_PATH:
            path = path[:_MAX_PATH] + "…"
        super().__init__(f"{problem} (at {path or 'the top level'})")
        self.problem = problem
        self.path = path


class _Refused:
    """Stands in for a refused number while parsing, so the walk can say where it is."""

    __slots__ = ("problem",)

    def __init__(self, problem: str) -> None:
        self.problem = problem


def _constant(name: str) -> _Refused:
    return _Refused(f"{name} is not a number JSON can carry")


def _pointer(link: tuple[Any, ...] | None) -> str:
    parts: list[str] = []
    while link is not None:
        link, key = link
        parts.append(str(key).replace("~", "~0").replace("/", "~1"))
    return "".join("/" + p for p in reversed(parts))


def _problem(item: Any) -> str | None:
    """What is wrong with a scalar, or None."""
    kind = type(item)
    if kind is str:
        if not item.isascii() and _SURROGATE.search(item) is not None:
            return "a string holds a lone UTF-16 surrogate"
    elif kind is int:
        if not INT_MIN <= item <= INT_MAX:
            return "an integer is outside 64 bits"
    elif kind is float:
        if not math.isfinite(item):
            return "a number is too large to be finite"
    elif kind is _Refused:
        return str(item.problem)
    return None


def check(value: Any, max_depth: int) -> None:
    """Raises UnsafeJSON for the first thing in ``value`` the broker does not take."""
    # iterative, so the check itself has no depth limit; scalars are checked in their
    # container's loop; a path is a linked list of (parent, key), made into a pointer
    # only when something is refused
    problem = _problem(value)
    if problem:
        raise UnsafeJSON(problem)
    stack: list[tuple[Any, tuple[Any, ...] | None, int]] = [(value, None, 1)]
    while stack:
        item, link, depth = stack.pop()
        if type(item) not in _CONTAINERS:
            continue
        if depth > max_depth:
            raise UnsafeJSON(f"nested deeper than {max_depth} levels", _pointer(link))
        pairs = item.items() if type(item) is dict else enumerate(item)
        # the common cases inline (this loop sees every value of a body); _problem says why
        for key, child in pairs:
            if type(key) is str and not key.isascii() and _SURROGATE.search(key):
                raise UnsafeJSON("a key holds a lone UTF-16 surrogate", _pointer(link))
            kind = type(child)
            if kind is dict or kind is list:
                stack.append((child, (link, key), depth + 1))
            elif (
                (kind is str and not child.isascii())
                or (kind is int and not INT_MIN <= child <= INT_MAX)
                or kind is float
                or kind is _Refused
            ):
                problem = _problem(child)
                if problem:
                    raise UnsafeJSON(problem, _pointer((link, key)))


def parse(raw: bytes | str, max_depth: int) -> Any:
    """The JSON document in ``raw`` (UTF-8 when bytes).

    Raises ``json.JSONDecodeError`` or ``UnicodeDecodeError`` for text that is not JSON,
    and UnsafeJSON for JSON holding a value the broker does not take.
    """
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    try:
        value = json.loads(text, parse_constant=_constant)
    except RecursionError:
        # deeper than the parser itself goes: far past any limit
        raise UnsafeJSON(f"nested deeper than {max_depth} levels") from None
    except json.JSONDecodeError:
        raise
    except ValueError:
        # an integer of more digits than Python converts (sys.get_int_max_str_digits)
        raise UnsafeJSON("an integer is outside 64 bits") from None
    check(value, max_depth)
    return value
