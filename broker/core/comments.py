"""The comment a person gives with an answer: why they approved or rejected.

Stored with the resolution and in the audit log, shown wherever the answer is; for a
tool review, a reject's reason for the model (broker/core/shapes.py
``with_reject_reason``). Text a person wrote: bounded, and with no control characters
but line breaks and tabs, so it prints safely in logs and pages.
"""

from __future__ import annotations

import re

from broker.core import errors

MAX_CHARS = 2000
PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
"""Any text but control characters other than tab, line feed and carriage return."""
_ALLOWED = re.compile(PATTERN)


def checked(comment: str | None) -> str | None:
    """The comment to store (None for none, or only blanks); InvalidRequest when it is
    too long or holds control characters."""
    if comment is None or not comment.strip():
        return None
    if len(comment) > MAX_CHARS:
        raise errors.InvalidRequest(
            f"comment: at most {MAX_CHARS} characters (got {len(comment)})", field="comment"
        )
    if not _ALLOWED.fullmatch(comment):
        raise errors.InvalidRequest(
            "comment: no control characters but line breaks and tabs", field="comment"
        )
    return comment
