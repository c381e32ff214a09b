"""A checkpoint an attempt has just read, handed to the graph's own first read of it.

The runner reads the thread's latest checkpoint under the thread lease before the graph
starts (worker/runner.py), and the graph's loop reads the same checkpoint again first
thing. Nothing else writes the thread in between (the lease and its fence see to that),
so ``primed`` lets that second read take the first one's result instead of a round
trip. It is taken once: any later read, in any task of the attempt, goes to Redis.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

MISS = object()

# [thread id, tuple or None]: a list, so taking it in a task the graph started (which
# runs in a copy of the context) takes it for the whole attempt
_box: ContextVar[list[Any] | None] = ContextVar("broker_saver_primed", default=None)


@contextlib.contextmanager
def primed(thread_id: str, checkpoint: Any) -> Iterator[None]:
    """Within the block, the first read of ``thread_id``'s latest checkpoint in the root
    namespace returns ``checkpoint`` (a ``CheckpointTuple`` or None)."""
    token = _box.set([thread_id, checkpoint])
    try:
        yield
    finally:
        _box.reset(token)


def take(thread_id: str, ns: str, checkpoint_id: str | None) -> Any:
    """The primed checkpoint for this read, or ``MISS``."""
    box = _box.get()
    if box is None or checkpoint_id or ns != "" or box[0] != thread_id:
        return MISS
    _box.set(None)
    found, box[0] = box[1], None
    return found
