"""The dashboard: one static page at ``/`` and its assets under ``/static/``.

Plain HTML, CSS and ES modules from ``broker/api/static``, with no build step. The page and
its assets are open paths: the page asks for an API key itself when the API answers 401,
or signs the person in when an OpenID provider is configured for it. The
Content-Security-Policy allows this origin only, so the page makes no request anywhere
else, except to the OpenID provider's origin when the dashboard signs people in there (its
discovery document and token endpoint).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from broker.core.settings import Settings

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(tags=["ui"])


def _policy(connect: str) -> str:
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src {connect}; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )


HEADERS = {
    "Content-Security-Policy": _policy("'self'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # revalidate every time (cheap, by ETag), so a new version is never half-loaded
    "Cache-Control": "no-cache",
}
_TYPES = {".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}


class Assets(StaticFiles):
    """The page's files, with the dashboard's headers and a fixed type for modules."""

    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(HEADERS)
        media_type = _TYPES.get(Path(str(full_path)).suffix)
        if media_type:
            response.headers["content-type"] = media_type
        return response


assets = Assets(directory=STATIC_DIR)


def page_headers(settings: Settings) -> dict[str, str]:
    """The page's headers: with dashboard sign-in on, the page may also reach the OpenID
    provider's origin (discovery and the token exchange); nothing else."""
    if not (settings.oidc_issuer and settings.oidc_client_id):
        return HEADERS
    issuer = urlsplit(settings.oidc_issuer)
    return {
        **HEADERS,
        "Content-Security-Policy": _policy(f"'self' {issuer.scheme}://{issuer.netloc}"),
    }


@router.get("/", include_in_schema=False)
async def dashboard(request: Request) -> FileResponse:
    """The dashboard page."""
    return FileResponse(STATIC_DIR / "index.html", headers=page_headers(request.app.state.settings))


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> FileResponse:
    return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml", headers=HEADERS)
