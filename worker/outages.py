"""How the worker's background loops report a failed pass.

An outage of Redis (down, full, read-only, loading, stalled) is expected to pass: one
line, and the loop tries again at its next turn. Anything else is a bug: a traceback.
"""

from __future__ import annotations

import logging

from broker.core import errors


def report(log: logging.Logger, what: str, exc: BaseException) -> None:
    if errors.unavailable(exc) is not None:
        log.warning("%s: Redis is unavailable (%s: %s); retrying", what, type(exc).__name__, exc)
    else:
        log.error("%s", what, exc_info=exc)
