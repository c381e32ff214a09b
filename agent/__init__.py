"""The agents the broker ships, the model they share, and the registry that loads agents.

Importing this package builds no graph: each agent module is imported when the registry
loads it.
"""

from agent.models import OfflineChatModel, get_chat_model
from agent.registry import BUILTIN_AGENTS, AgentSpec, RegistryError, load_registry

__all__ = [
    "BUILTIN_AGENTS",
    "AgentSpec",
    "OfflineChatModel",
    "RegistryError",
    "get_chat_model",
    "load_registry",
]
