"""The shapes of ids and cursors clients send, checked before any reaches Redis.

Ids become parts of key names (``<prefix>:run:<id>``, ``<prefix>:thread:<id>:active``).
An id holding ``:`` could name another key (``<run id>:interrupts`` is a run's index,
not a run), so every id a client sends or chooses is 1 to 128 of ``A-Z a-z 0-9 . _ ~ -``:
the unreserved characters of a URL, none of which the key names use as a separator.
The broker's own ids (UUIDs) have this shape; an id of any other shape names nothing.
"""

from __future__ import annotations

import re

ID_MAX = 128
ID_PATTERN = rf"^[A-Za-z0-9._~-]{{1,{ID_MAX}}}$"
ID_RULE = f"1 to {ID_MAX} of the characters A-Z a-z 0-9 . _ ~ -"
_ID = re.compile(ID_PATTERN)

_STREAM_ID = re.compile(r"^([0-9]{1,20})(?:-([0-9]{1,20}))?$")
_U64 = 2**64 - 1


def is_id(value: str) -> bool:
    """Whether ``value`` has the shape of an id (run, interrupt, thread, webhook)."""
    return _ID.fullmatch(value) is not None


def stream_id(value: str) -> tuple[int, int] | None:
    """A Redis stream id (``ms`` or ``ms-seq``, each a 64-bit unsigned number) as a pair,
    or None for anything else. The largest id is refused too: nothing can follow it,
    and Redis refuses it as an exclusive lower bound."""
    m = _STREAM_ID.fullmatch(value)
    if m is None:
        return None
    ms, seq = int(m[1]), int(m[2] or 0)
    if ms > _U64 or seq > _U64 or (ms, seq) == (_U64, _U64):
        return None
    return ms, seq
