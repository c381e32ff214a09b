"""AG-UI requests made the way an AG-UI client makes them, over real HTTP."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from tests.harness import Broker


def agui(broker: Broker, agent: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """POSTs a RunAgentInput and returns the decoded AG-UI events."""
    events = []
    with httpx.stream(
        "POST",
        f"{broker.url}/agui/{agent}",
        json=body,
        headers={"Accept": "text/event-stream"},
        timeout=60,
    ) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[len("data: ") :]))
    return events


def run_input(thread: str, outcome: bool = True, **extra: Any) -> dict[str, Any]:
    """A RunAgentInput; ``outcome`` asks for RUN_FINISHED's interrupt outcome."""
    props = {"interruptOutcome": outcome, **extra.pop("forwardedProps", {})}
    return {
        "threadId": thread,
        "runId": str(uuid.uuid4()),
        "messages": [{"id": f"u-{thread}", "role": "user", "content": "hi"}],
        "forwardedProps": props,
        **extra,
    }
