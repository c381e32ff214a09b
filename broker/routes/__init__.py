"""The API's route groups, one module each."""

from broker.routes import agents, health, interrupts, runs, stream

__all__ = ["agents", "health", "interrupts", "runs", "stream"]
