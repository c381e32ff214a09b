"""Action links: GET shows a confirmation page and changes nothing; POST answers.

Mail scanners and chat unfurlers follow links, so only the POST of the page's form
answers. The token is the credential: no API key is needed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from broker.api import pages
from broker.api.deps import QueueDep, SettingsDep, StoreDep
from broker.api.openapi import REDIS, error_responses, form_body
from broker.core import auth, channel, errors, fingerprint, jsonsafe, links, shapes
from broker.core.codec import now_ms
from broker.core.records import Channel, InterruptRecord, InterruptStatus
from broker.core.schemas import declared_schema
from broker.core.store import Store

router = APIRouter(prefix="/links", tags=["links"], responses=error_responses(REDIS))
# pages for a browser, not JSON: a link that is not one the broker issued, or whose
# question is gone (404), closed (409), expired or used (410), an answer refused (422)
PAGE = {"content": {"text/html": {"schema": {"type": "string"}}}}
PAGES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The page", **PAGE},
    404: {"description": "Not a valid link, or its question is gone", **PAGE},
    409: {"description": "The question is already closed", **PAGE},
    410: {"description": "The link expired or was used", **PAGE},
}
# the question changed since the page showed it (its form's fingerprint is stale)
CHANGED: dict[int | str, dict[str, Any]] = {
    412: {"description": "The question changed since the page was shown", **PAGE}
}
_SUPERSEDED = (errors.AlreadyResolved, errors.InterruptClosed)


async def _open(
    store: Store, key: bytes, token: str
) -> tuple[links.Claims, InterruptRecord | None]:
    claims = links.verify(key, token)
    try:
        return claims, await store.interrupt(claims.interrupt_id)
    except errors.InterruptNotFound:
        return claims, None


@router.get("/{token}", response_class=HTMLResponse, responses=PAGES)
async def show_link(token: str, store: StoreDep, settings: SettingsDep) -> HTMLResponse:
    """A confirmation page for an action link; it changes nothing."""
    key = links.secret_key(settings)
    if key is None:
        return pages.notice("disabled")
    try:
        claims, h = await _open(store, key, token)
    except links.LinkInvalid as exc:
        return pages.notice(exc.reason)
    if await store.r.exists(store.keys.link_used(claims.nonce)):
        return pages.notice("used")
    if h is None:
        return pages.notice("gone")
    if h.status != InterruptStatus.PENDING:
        return pages.notice("superseded", f"Its status is {h.status}.")
    if h.expires_at_ms and h.expires_at_ms <= now_ms():
        return pages.notice("expired")
    choice = shapes.find_choice(h.value, h.type, claims.choice)
    if choice is None:
        return pages.notice("tampered")
    return pages.confirm(h.value, h.agent_id, choice, token, h.fingerprint)


@router.post(
    "/{token}",
    response_class=HTMLResponse,
    responses={**PAGES, **CHANGED, 422: {"description": "The answer was not accepted", **PAGE}},
    openapi_extra=form_body(
        {
            "token": "the link's token (the page's form repeats it)",
            "answer": "a typed answer",
            "comment": "an optional note kept with the answer (a reject's reason)",
            "fingerprint": "the fingerprint of the question the page showed; the answer "
            "is refused (412) if the question changed since",
        }
    ),
)
async def use_link(
    token: str, request: Request, store: StoreDep, queue: QueueDep, settings: SettingsDep
) -> HTMLResponse:
    """Answers the interrupt with the link's choice; each link answers once."""
    key = links.secret_key(settings)
    if key is None:
        return pages.notice("disabled")
    form = await _form(request, settings.max_answer_bytes)
    if form is None:
        return pages.refused(f"send the page's form (at most {settings.max_answer_bytes} bytes)")
    if form.get("token", token) != token:
        return pages.notice("tampered")
    try:
        claims, h = await _open(store, key, token)
    except links.LinkInvalid as exc:
        if exc.claims is not None:
            await channel.refuse(
                store, exc.claims.interrupt_id, "link_expired", channel=Channel.LINK
            )
        return pages.notice(exc.reason)
    if h is None:
        return pages.notice("gone")
    choice = shapes.find_choice(h.value, h.type, claims.choice)
    if choice is None:
        return pages.notice("tampered")
    answer = (
        _free_answer(h, form.get("answer", ""), settings.max_json_depth)
        if choice.free
        else choice.answer
    )
    # the link is a capability for this one interrupt, and nothing else
    holder = auth.Principal(
        key_id=None, scopes=frozenset({auth.RESOLVE}), agents=frozenset({h.agent_id})
    )
    try:
        answered = await channel.answer(
            store,
            queue,
            claims.interrupt_id,
            answer,
            channel=Channel.LINK,
            principal=holder,
            resolved_by=f"link:{choice.name}",
            single_use=channel.SingleUse(claims.nonce, claims.expires_ms - now_ms() + 60_000),
            comment=form.get("comment"),
            # a form without it (made before fingerprints) binds to nothing
            if_match=fingerprint.tags(form.get("fingerprint") or None),
        )
    except errors.FingerprintMismatch:
        return pages.notice("changed")
    except errors.LinkUsed:
        return pages.notice("used")
    except _SUPERSEDED:
        return pages.notice("superseded")
    except errors.InterruptExpired:
        return pages.notice("expired")
    except errors.InterruptNotFound:
        return pages.notice("gone")
    except errors.BrokerError as exc:
        return pages.refused(exc.message)
    return pages.done(choice, (answered.get("resolution") or {}).get("comment"))


async def _form(request: Request, limit: int) -> dict[str, str] | None:
    """The urlencoded form body (a browser's POST), or None when it is not one."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    if ctype not in ("application/x-www-form-urlencoded", "") and body:
        return None
    try:
        parsed = parse_qs(body.decode(), keep_blank_values=True)
    except UnicodeDecodeError:
        return None
    return {k: v[0] for k, v in parsed.items()}


def _free_answer(h: InterruptRecord, text: str, max_depth: int) -> Any:
    """A typed answer: JSON when the declared schema wants something other than text.
    Text that is not JSON the broker takes stays text (and the schema check refuses it)."""
    schema = declared_schema(h.value, h.response_schema)
    if schema is not None and schema.get("type") not in (None, "string"):
        try:
            return jsonsafe.parse(text, max_depth)
        except ValueError:
            return text
    return text
