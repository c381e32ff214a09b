from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from broker.api.deps import Principal, RegistryDep

router = APIRouter(prefix="/agents", tags=["agents"])


@router.get("")
async def list_agents(registry: RegistryDep, principal: Principal) -> dict[str, Any]:
    """The registered agents (those the API key may use)."""
    return {
        "items": [
            {"agent_id": spec.id, "description": spec.description, "source": spec.source}
            for spec in registry.values()
            if principal.sees(spec.id)
        ]
    }
