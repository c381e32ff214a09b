"""The public keys that decision receipts verify against: open, so anyone holding a
receipt can check it without a credential of the broker's."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from broker.core.receipts import ReceiptKeys

router = APIRouter(tags=["receipts"])

MAX_AGE_S = 300
"""How long a client may cache the set; a rotation publishes the next key this long
before it signs (docs/design.md, "Signed decision receipts")."""


class Jwk(BaseModel):
    kty: Literal["OKP"] = Field(description="Octet key pair (RFC 8037).")
    crv: Literal["Ed25519"]
    x: str = Field(description="The public key, base64url.")
    kid: str = Field(description="Names the key in a receipt's `kid` header.")
    use: Literal["sig"]
    alg: Literal["EdDSA"]


class JwkSet(BaseModel):
    keys: list[Jwk] = Field(
        description="Every configured receipt key, the one that signs and the retired ones "
        "whose receipts still verify; empty when receipts are off."
    )


@router.get(
    "/.well-known/jwks.json",
    response_model=JwkSet,
    summary="Receipt keys (JWK Set)",
)
async def jwks(request: Request) -> Any:
    """The public keys of signed decision receipts, as an RFC 7517 JWK Set."""
    keys: ReceiptKeys = request.app.state.store.receipts
    return JSONResponse(keys.jwks(), headers={"Cache-Control": f"public, max-age={MAX_AGE_S}"})
