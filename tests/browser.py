"""Playwright on Debian's Chromium for the dashboard tests, and what a page requested."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import Browser, Page, WebSocketRoute

from tests.harness import ROOT

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = ROOT / "artifacts"
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 860}


@dataclass
class Tab:
    """A page in its own browser context, with every URL it asked for and every error."""

    page: Page
    origin: str
    urls: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def foreign(self) -> list[str]:
        """Requested URLs not on the broker's origin (http or ws)."""
        want = urlsplit(self.origin).netloc
        return [u for u in self.urls if urlsplit(u).netloc != want]


def open_tab(browser: Browser, origin: str, viewport: dict[str, int] | None = None) -> Tab:
    context = browser.new_context(base_url=origin, viewport=viewport or LAPTOP)  # type: ignore[arg-type]
    page = context.new_page()
    tab = Tab(page, origin)
    page.on("request", lambda r: tab.urls.append(r.url))
    page.on("websocket", lambda ws: tab.urls.append(ws.url))
    page.on("pageerror", lambda e: tab.errors.append(str(e)))
    page.on("console", lambda m: tab.errors.append(m.text) if _unexpected(m.type, m.text) else None)
    page.set_default_timeout(30_000)
    return tab


def _unexpected(kind: str, text: str) -> bool:
    # refused answers (409, 410, 422) and refused sockets are part of the tests
    expected = ("Failed to load resource", "WebSocket connection to")
    return kind == "error" and not text.startswith(expected)


def silence_websocket(page: Page) -> None:
    """The page's WebSocket connects but never hears an event, as when an event is still
    on its way: the page must then learn from the API's answer to its own request."""

    def handler(ws: WebSocketRoute) -> None:
        ws.send(json.dumps({"type": "live", "id": "0-0"}))

    page.route_web_socket("**/ws**", handler)


def refuse_websocket(page: Page) -> None:
    """Every WebSocket to the broker closes at once, as behind a proxy that drops them."""

    page.route_web_socket("**/ws**", lambda ws: ws.close(code=1011, reason="refused"))


def screenshot(page: Page, name: str, **options: Any) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), **options)
    return path
