from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from broker.deps import RegistryDep

router = APIRouter(prefix="/agents", tags=["agents"])


@router.get("")
async def list_agents(registry: RegistryDep) -> dict[str, Any]:
    """The registered agents."""
    return {
        "items": [
            {"agent_id": spec.id, "description": spec.description, "source": spec.source}
            for spec in registry.values()
        ]
    }
