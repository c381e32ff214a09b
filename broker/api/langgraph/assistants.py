"""``/langgraph/assistants``: the registered agents, as assistants (read only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from broker.api.body import read_json
from broker.api.deps import Reader, RegistryDep, SettingsDep
from broker.api.langgraph import paths  # noqa: F401  (the path convertors)
from broker.api.langgraph.search import matches
from broker.api.langgraph.shapes import assistant
from broker.api.openapi import BODY, REDIS, SCOPE, error_responses, json_body
from broker.api.responses import JSON
from broker.core import errors

COMMON = error_responses(*SCOPE, REDIS)
router = APIRouter(prefix="/langgraph/assistants", tags=["langgraph"], responses=COMMON)


class AssistantSearch(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    graph_id: str | None = None
    name: str | None = None
    metadata: dict[str, Any] | None = None
    limit: int = Field(default=10, ge=1, le=1000)
    offset: int = Field(default=0, ge=0)


@router.post(
    "/search",
    response_model=list[dict[str, Any]],
    responses=error_responses(*BODY),
    openapi_extra=json_body(AssistantSearch),
)
async def search_assistants(
    request: Request, registry: RegistryDep, settings: SettingsDep, principal: Reader
) -> Response:
    """The agents the key may use, as assistants; ``X-Pagination-Next`` when more follow."""
    body = await read_json(request, AssistantSearch, settings.max_input_bytes)
    everyone = [assistant(spec.id, spec.description) for spec in registry.values()]
    found = [
        a
        for a in everyone
        if principal.sees(a["assistant_id"])
        and body.graph_id in (None, a["graph_id"])
        and body.name in (None, a["name"])
        and matches(a["metadata"], body.metadata or {})
    ]
    page = found[body.offset : body.offset + body.limit]
    more = body.offset + body.limit < len(found)
    headers = {"X-Pagination-Next": str(body.offset + body.limit)} if more else None
    return JSON(page, headers=headers)


@router.get(
    "/{assistant_id:lg_id}",
    response_model=dict[str, Any],
    responses=error_responses(errors.AgentNotFound),
)
async def get_assistant(
    assistant_id: str, registry: RegistryDep, principal: Reader
) -> dict[str, Any]:
    """One assistant: the agent of that id."""
    spec = registry.get(assistant_id)
    if spec is None or not principal.sees(assistant_id):
        known = sorted(a for a in registry if principal.sees(a))
        raise errors.AgentNotFound(
            f"no assistant {assistant_id!r}; known: {', '.join(known)}", known_agents=known
        )
    return assistant(spec.id, spec.description)
