"""How people sign in: open, so the dashboard can ask before it has any credential."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from broker.core import oidc

router = APIRouter(tags=["auth"])


class OidcConfig(BaseModel):
    issuer: str = Field(description="The OpenID provider; its tokens' `iss`.")
    client_id: str | None = Field(
        description="The dashboard's public client at the provider (authorization code "
        "with PKCE); null: the dashboard does not sign people in, though tokens are "
        "still accepted."
    )
    audience: str = Field(description="The `aud` a token must carry (its resource).")
    scope: str = Field(description="The scope the dashboard asks for.")


class AuthConfig(BaseModel):
    oidc: OidcConfig | None = Field(
        description="The provider people sign in with; null when none is configured."
    )


@router.get("/auth/config", response_model=AuthConfig)
async def auth_config(request: Request) -> dict[str, Any]:
    """Whether people sign in with an OpenID provider, and what a client needs to."""
    verifier: oidc.Verifier | None = request.app.state.verifier
    return {"oidc": verifier.public_config() if verifier else None}
