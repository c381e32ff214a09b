"""The API's route groups, one module each."""

from broker.api.routes import (
    admin,
    agents,
    agui,
    assignment,
    bulk,
    health,
    identity,
    interrupts,
    links,
    metrics,
    runs,
    slack,
    stream,
)

__all__ = [
    "admin",
    "agents",
    "agui",
    "assignment",
    "bulk",
    "health",
    "identity",
    "interrupts",
    "links",
    "metrics",
    "runs",
    "slack",
    "stream",
]
