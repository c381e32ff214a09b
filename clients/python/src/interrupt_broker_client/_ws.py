"""The address of ``WS /ws`` on a broker reached at an HTTP base URL."""

from __future__ import annotations

from typing import Any

import httpx


def ws_url(base_url: httpx.URL, filters: dict[str, Any], after: str | None) -> str:
    """``ws(s)://<host>/<base path>/ws?<filters>&after=<id>``; without ``after``, live
    events only, from now on."""
    params = dict(filters)
    if after:
        params["after"] = after
    scheme = "wss" if base_url.scheme == "https" else "ws"
    path = base_url.path.rstrip("/") + "/ws"
    return str(base_url.copy_with(scheme=scheme, path=path, params=params))
