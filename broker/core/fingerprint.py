"""What an answer is bound to: the fingerprint of the question it answers.

An interrupt's fingerprint is a digest of what a person is shown and answers: its value,
its run, and LangGraph's interrupt id. LangGraph derives that id from the task that
raised the interrupt, whose id it derives from the checkpoint the task ran from (its id,
the step, the node's path), so the id binds the checkpoint the run paused at without a
read of it. The worker computes the fingerprint as it records the interrupt; an answer
that carries one (``If-Match``, a link page's form, an AG-UI resume) is taken only while
the interrupt still has it (docs/design.md, "Answers bound to what was shown").

SHA-256 over canonical JSON (sorted keys, compact, UTF-8), of which the first 24 bytes
(192 bits) in base64url: 32 characters, safe in an ETag and a form field. Finding two
questions with one fingerprint costs about 2^96 work.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from broker.core.codec import dumps, loads

VERSION = "fp1"
"""Changes if what the digest covers changes; part of what is hashed."""
ANY = "*"


def canonical(value: Any) -> str:
    """The value as canonical JSON: keys sorted, no spaces, text as UTF-8."""
    # through the codec first: a graph value that JSON cannot hold is hashed as stored
    plain = loads(dumps(value))
    return json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def of(run_id: str, lg_id: str, value: Any) -> str:
    """The fingerprint of the interrupt ``lg_id`` of run ``run_id`` asking ``value``."""
    text = canonical([VERSION, run_id, lg_id, value])
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()[:24]
    return base64.urlsafe_b64encode(digest).decode()


def tags(header: str | None) -> list[str] | None:
    """The fingerprints an ``If-Match`` header names; None when it sets no condition
    (absent, or ``*``). Quoted or bare; a weak tag (``W/"…"``) names nothing, since
    If-Match compares strongly."""
    if header is None or not header.strip():
        return None
    out: list[str] = []
    for part in header.split(","):
        tag = part.strip()
        if tag == ANY:
            return None
        if tag.startswith("W/"):
            continue
        if len(tag) >= 2 and tag[0] == tag[-1] == '"':
            tag = tag[1:-1]
        if tag:
            out.append(tag)
    return out


def holds(wanted: list[str] | None, current: str) -> bool:
    """Whether an answer naming ``wanted`` (``tags``) may answer a question whose
    fingerprint is ``current``; a record made before fingerprints has "" and matches
    only ``*``."""
    return wanted is None or (bool(current) and current in wanted)
