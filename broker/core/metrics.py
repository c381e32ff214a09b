"""The answers counter, kept in this process (prometheus_client's default registry).

Counting is in memory: it adds no Redis round trip to an answer. Every API replica (and
every worker, whose deadline pass answers with defaults) counts its own; Prometheus adds
them up. Labels are bounded: the channel is one of ``Channel``; the outcome is
``accepted``, ``replayed`` (an idempotent retry given the first answer's response) or
the error code of a refusal (``already_resolved``, ``invalid_answer``, ...).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from prometheus_client import Counter

from broker.core import errors
from broker.core.records import Channel

ACCEPTED = "accepted"
REPLAYED = "replayed"

ANSWERS = Counter(
    "broker_answers",
    "Answers by channel and outcome: accepted, replayed, or the error code of a refusal.",
    ["channel", "outcome"],
)

P = ParamSpec("P")
R = TypeVar("R")


def count(channel: Channel, outcome: str) -> None:
    ANSWERS.labels(channel=Channel(channel).value, outcome=outcome).inc()


def refusals(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Counts each refusal ``fn`` raises (a broker error) under its keyword ``channel``;
    what it accepts is counted where it is recorded."""

    @functools.wraps(fn)
    async def counted(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except errors.BrokerError as exc:
            channel = kwargs.get("channel")
            if isinstance(channel, Channel):
                count(channel, exc.code)
            raise

    return counted
