"""The broker's public routes, read from its OpenAPI document, and which of them a
client's requests reached. The client tests (Python and TypeScript) record every
request their client sends and check that together they reach every public route.

The WebSocket is a public route OpenAPI does not describe; it is added here. Routes
that serve other clients are left out: ``/langgraph`` serves the LangGraph SDKs, which
tests/test_langgraph_sdk.py drives, and ``/slack/interactivity`` takes Slack's own
callbacks, which tests/test_slack.py sends signed; the broker's clients wrap neither.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

Operation = tuple[str, str]  # (method, path template), e.g. ("GET", "/runs/{run_id}")

WEBSOCKET: Operation = ("GET", "/ws")
SERVED_FOR_OTHER_CLIENTS = ("/langgraph/", "/slack/")
METHODS = frozenset({"get", "post", "put", "patch", "delete"})


def operations(spec: dict[str, Any]) -> set[Operation]:
    """Every public operation of the broker: its OpenAPI paths, and the WebSocket."""
    found = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if method in METHODS and not path.startswith(SERVED_FOR_OTHER_CLIENTS)
    }
    return found | {WEBSOCKET}


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile(
        "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts if p) + "$"
    )


def template_of(ops: Iterable[Operation], method: str, path: str) -> Operation | None:
    """The operation a request (``method``, ``path`` without its query) reached. A literal
    path wins over a template (``/interrupts/resolve`` over ``/interrupts/{id}``)."""
    method = method.upper()
    path = path.split("?", 1)[0]
    matches = [op for op in ops if op[0] == method and _pattern(op[1]).match(path)]
    matches.sort(key=lambda op: op[1].count("{"))
    return matches[0] if matches else None


def unreached(spec: dict[str, Any], requests: Iterable[tuple[str, str]]) -> list[Operation]:
    """The public operations none of ``requests`` (``(method, path)`` pairs) reached."""
    ops = operations(spec)
    reached = {template_of(ops, method, path) for method, path in requests}
    return sorted(ops - reached)
