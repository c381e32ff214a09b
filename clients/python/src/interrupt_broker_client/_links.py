"""Action links (``/links/{token}``), mixed into ``Client`` and ``AsyncClient``: the
confirmation page a link shows, and the POST of its form, which answers. The token is
the credential: no API key is needed, and the request goes to this client's broker
(a link's host is the broker's public URL, which may not be where the client reaches
it). Both answer with an HTML page whatever the outcome: its status says it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from interrupt_broker_client import _calls
from interrupt_broker_client._calls import Call
from interrupt_broker_client.errors import from_response
from interrupt_broker_client.models import ActionLink, LinkAnswer

if TYPE_CHECKING:
    import httpx


def page(response: httpx.Response) -> LinkAnswer:
    """The page; an answer that is no page (a ``503``, say) raises its error."""
    if not response.headers.get("content-type", "").startswith("text/html"):
        raise from_response(response)
    return LinkAnswer(response.status_code, response.text)


class ActionLinks:
    """Action links, blocking."""

    if TYPE_CHECKING:

        def _send(self, call: Call) -> httpx.Response: ...

    def show_link(self, link: ActionLink | str) -> LinkAnswer:
        """The confirmation page of a link (a link, its URL or its token), as a browser
        opening it gets it: ``200`` with the question and its form, or ``404``, ``409``,
        ``410`` for a link that answers nothing now. Nothing changes."""
        return page(self._send(_calls.show_link(link)))

    def use_link(
        self,
        link: ActionLink | str,
        *,
        answer: str | None = None,
        comment: str | None = None,
        fingerprint: str | None = None,
    ) -> LinkAnswer:
        """Answers with an action link (a link from a webhook, its URL or its token), as
        its confirmation page's button would. ``answer`` is the typed answer of a
        free-answer link; ``fingerprint`` binds it to the question the page showed."""
        return page(self._send(_calls.use_link(link, answer, comment, fingerprint)))

    def answer_link(
        self, links: list[ActionLink], choice: str, *, comment: str | None = None
    ) -> LinkAnswer:
        """Uses the link of ``choice`` among an interrupt's action links."""
        return self.use_link(_calls.link_for(links, choice), comment=comment)


class AsyncActionLinks:
    """The methods of ``ActionLinks``, awaited."""

    if TYPE_CHECKING:

        async def _send(self, call: Call) -> httpx.Response: ...

    async def show_link(self, link: ActionLink | str) -> LinkAnswer:
        return page(await self._send(_calls.show_link(link)))

    async def use_link(
        self,
        link: ActionLink | str,
        *,
        answer: str | None = None,
        comment: str | None = None,
        fingerprint: str | None = None,
    ) -> LinkAnswer:
        return page(await self._send(_calls.use_link(link, answer, comment, fingerprint)))

    async def answer_link(
        self, links: list[ActionLink], choice: str, *, comment: str | None = None
    ) -> LinkAnswer:
        return await self.use_link(_calls.link_for(links, choice), comment=comment)
