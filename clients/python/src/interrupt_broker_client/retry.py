"""When to send a request again, and how long to wait first.

A request is sent again only where that is safe: a read; a write carrying an
``Idempotency-Key`` (the broker answers a repeat with the first response and does the
write once); and any request whose connection failed before it was sent. It is sent
again after a connection error or a ``503`` (Redis unavailable, the API stopping).
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class Retry:
    """How often and how patiently to retry: ``attempts`` in all (the first included)
    for a request; for a follower, failed reconnects in a row before giving up. Waits
    double from ``backoff_s`` up to ``max_backoff_s``; a 503's ``Retry-After`` is
    honoured up to ``max_backoff_s``."""

    attempts: int = 5
    backoff_s: float = 0.2
    max_backoff_s: float = 5.0

    def delay(self, failures: int, retry_after_s: float | None = None) -> float:
        base = min(self.max_backoff_s, self.backoff_s * 2.0 ** max(0, failures - 1))
        if retry_after_s is not None:
            return min(self.max_backoff_s, max(base, retry_after_s))
        return base


def wait_before_retry(
    retry: Retry,
    failures: int,
    safe: bool,
    error: Exception | None = None,
    response: httpx.Response | None = None,
) -> float | None:
    """The wait before sending again after ``failures`` failed tries, or None to give up
    (the error is then raised, or the response's error)."""
    if failures >= retry.attempts:
        return None
    if error is not None:
        # a connection never made carried nothing: sending again is always safe
        return retry.delay(failures) if safe or isinstance(error, httpx.ConnectError) else None
    if response is not None and response.status_code == 503 and safe:
        try:
            after: float | None = float(response.headers.get("retry-after", ""))
        except ValueError:
            after = None
        return retry.delay(failures, after)
    return None
