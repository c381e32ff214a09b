"""Playwright on Debian's Chromium for the dashboard tests: the browser, tabs that must
not throw nor ask another origin for anything, the inbox's cards, and what a page
requested."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, WebSocketRoute, sync_playwright

from tests.harness import ROOT, wait_until

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
NEEDS_CHROMIUM = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="Debian's chromium is not installed (.ci/run installs it)",
)
"""The mark every dashboard test module carries."""
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


@contextlib.contextmanager
def launch() -> Iterator[Browser]:
    """Debian's Chromium, headless, closed afterwards (a module's ``browser`` fixture)."""
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@contextlib.contextmanager
def checked_tab(
    browser: Browser,
    origin: str,
    *,
    also: Iterable[str] = (),
    viewport: dict[str, int] | None = None,
) -> Iterator[Tab]:
    """A tab that, afterwards, must not have thrown, nor asked anything of an origin other
    than ``origin`` and those in ``also``; its context is closed either way."""
    t = open_tab(browser, origin, viewport)
    try:
        yield t
        allowed = {urlsplit(origin).netloc, *(urlsplit(o).netloc for o in also)}
        foreign = [u for u in t.urls if urlsplit(u).netloc not in allowed]
        assert foreign == [], f"requests off the broker's origin: {foreign}"
        assert t.errors == [], f"errors in the page: {t.errors}"
    finally:
        t.page.context.close()


def record_texts(page: Page, selector: str) -> None:
    """From now on the page keeps, in ``window.seenTexts`` (a Set), every text an element
    matching ``selector`` shows, however briefly: a state that a live event soon
    replaces is then waited for with ``page.wait_for_function``, not caught by chance."""
    page.evaluate(
        """(selector) => {
          const seen = (window.seenTexts = new Set());
          const keep = () => {
            for (const el of document.querySelectorAll(selector)) seen.add(el.textContent);
          };
          const all = { subtree: true, childList: true, characterData: true };
          new MutationObserver(keep).observe(document.body, all);
        }""",
        selector,
    )


def sign_in_with(page: Page, token: str) -> None:
    """The page acts as the person ``token`` names from its first load on, as after a
    sign-in (the token in session storage), without the provider's login pages."""
    page.add_init_script(f"sessionStorage.setItem('broker.accessToken', {json.dumps(token)})")


def card(page: Page, run_id: str, kind: str | None = None) -> Locator:
    """The inbox card of a run's pending interrupt (of ``kind`` when given)."""
    selector = f'#inbox-list li.interrupt[data-run-id="{run_id}"]'
    if kind:
        selector += f'[data-kind="{kind}"]'
    return page.locator(selector)


def asked(page: Page, interrupt_id: str) -> Locator:
    """The inbox card of one interrupt."""
    return page.locator(f'#inbox-list li.interrupt[data-interrupt-id="{interrupt_id}"]')


def clear_inbox(client: httpx.Client) -> None:
    """Cancels every run still waiting, so a test sees only its own interrupts."""
    runs = client.get("/runs", params={"status": "interrupted", "limit": 500}).json()["items"]
    for run in runs:
        client.post(f"/runs/{run['run_id']}/cancel")
    wait_until(lambda: client.get("/interrupts").json()["items"] == [], "the inbox to be empty")


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
