"""What an AG-UI request says about answering: the answers it carries, and the
fingerprints it binds them to."""

from __future__ import annotations

import contextlib
from typing import Any

from ag_ui.core import RunAgentInput

from broker.core import fingerprint, jsonsafe
from broker.core.records import InterruptRecord


def requested(inp: RunAgentInput, max_depth: int) -> list[tuple[str | None, str, Any]] | None:
    """The answers a request carries: ``resume[]`` entries, or CopilotKit's
    ``forwardedProps.command.resume``, as (interrupt id or None for "the one pending",
    status, value); None when it carries none."""
    if inp.resume:
        return [(r.interrupt_id, r.status, r.payload) for r in inp.resume]
    fp = inp.forwarded_props
    if isinstance(fp, dict):
        command = fp.get("command")
        if isinstance(command, dict) and command.get("resume") is not None:
            value = command["resume"]
            if isinstance(value, str):
                # CopilotKit sends the answer JSON-encoded; text that is not JSON,
                # or JSON the broker does not take, stays the string it is
                with contextlib.suppress(ValueError):
                    value = jsonsafe.parse(value, max_depth)
            return [(None, "resolved", value)]
    return None


def bound(inp: RunAgentInput, chosen: list[InterruptRecord]) -> dict[str, list[str]]:
    """The fingerprints the resume binds its answers to: ``forwardedProps.ifMatch``,
    one string (the resume answers one interrupt) or an object by interrupt id (the
    broker's id or LangGraph's); an answer it names nothing for binds to nothing."""
    fp = inp.forwarded_props
    named = fp.get("ifMatch") if isinstance(fp, dict) else None
    out: dict[str, list[str]] = {}
    for h in chosen:
        if isinstance(named, str) and len(chosen) == 1:
            tag: Any = named
        elif isinstance(named, dict):
            tag = named.get(h.id, named.get(h.lg_id))
        else:
            tag = None
        if isinstance(tag, str) and (tags := fingerprint.tags(tag)) is not None:
            out[h.id] = tags
    return out
