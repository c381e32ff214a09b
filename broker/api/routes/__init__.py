"""The API's route groups, one module each."""

from broker.api.routes import admin, agents, agui, health, interrupts, links, metrics, runs, stream

__all__ = [
    "admin",
    "agents",
    "agui",
    "health",
    "interrupts",
    "links",
    "metrics",
    "runs",
    "stream",
]
