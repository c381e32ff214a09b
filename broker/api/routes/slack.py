"""Slack's interactivity requests: button clicks and modal submissions on the messages
the broker posts (broker/core/slack_blocks.py).

No API key: Slack signs each request with the app's signing secret, and the signature
and its timestamp (at most five minutes old) are checked with slack_sdk's
``SignatureVerifier`` before anything in the body is read. The Slack user answers as the
person ``BROKER_SLACK_USERS`` maps them to, through ``channel.answer``, so assignment,
the answer's contracts and the audit log apply as on every channel. Slack wants a reply
within 3 seconds: an empty 200, or for a modal the errors to show in it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from slack_sdk.errors import SlackClientError

from broker.api.deps import QueueDep, StoreDep
from broker.api.openapi import REDIS, error_responses, form_body
from broker.core import (
    auth,
    channel,
    errors,
    fingerprint,
    jsonsafe,
    shapes,
    slack_blocks,
    slack_review,
)
from broker.core.records import Channel, InterruptRecord
from broker.core.schemas import declared_schema
from broker.core.slack import ISSUER, Slack
from broker.core.store import Store

log = logging.getLogger("broker.api.slack")
router = APIRouter(prefix="/slack", tags=["slack"])
UNKNOWN_USER = "slack_user_unknown"
"""The audit outcome of a click or submission by a Slack user ``BROKER_SLACK_USERS`` lacks."""
UNKNOWN_TEXT = "Your Slack user may not answer here: ask to be added to BROKER_SLACK_USERS."
_LIMIT = 256 * 1024
_FORM = form_body({"payload": "the interaction, as JSON (Slack's format)"})
_FORM["requestBody"]["required"] = True
_FORM["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]["required"] = [
    "payload"
]


@router.post(
    "/interactivity",
    responses={
        200: {
            "description": "Taken: empty, or for a modal Slack's response_action",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        **error_responses(
            errors.Unauthorized, errors.InvalidRequest, errors.PayloadTooLarge, errors.SlackOff
        ),
        **error_responses(REDIS),
    },
    openapi_extra=_FORM,
)
async def interactivity(request: Request, store: StoreDep, queue: QueueDep) -> Response:
    """Takes a click on a button of an interrupt's Slack message, or a submitted modal."""
    config: Slack | None = request.app.state.slack
    if config is None:
        raise errors.SlackOff("Slack is not configured on this broker")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _LIMIT:
            raise errors.PayloadTooLarge(f"at most {_LIMIT} bytes")
    headers = request.headers
    if not config.verifier().is_valid(
        body, headers.get("x-slack-request-timestamp"), headers.get("x-slack-signature")
    ):
        raise errors.Unauthorized(
            "not signed by Slack with the configured signing secret, or signed more than "
            "5 minutes ago"
        )
    try:
        payload = json.loads(parse_qs(body.decode())["payload"][0])
        user = payload["user"]
        kind = payload["type"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise errors.InvalidRequest("the body must be a form with Slack's JSON payload") from exc
    user_id, name = str(user.get("id")), user.get("username") or user.get("name")
    who = config.principal(user_id, name)
    stranger = auth.Principal(
        key_id=None, scopes=frozenset(), person=auth.Person(f"slack:{user_id}", ISSUER, name=name)
    )
    if kind == "block_actions":
        await _clicked(store, queue, config, payload, who or stranger, who is not None)
        return Response(status_code=200)
    if kind == "view_submission":
        view = payload.get("view") or {}
        if view.get("callback_id") != slack_blocks.CALLBACK:
            return Response(status_code=200)
        problems = await _submitted(store, queue, view, who or stranger, who is not None)
        if problems:
            shown = {block: text[:150] for block, text in problems.items()}
            return JSONResponse({"response_action": "errors", "errors": shown})
    return Response(status_code=200)


async def _interrupt(store: Store, interrupt_id: str) -> InterruptRecord | None:
    try:
        return await store.interrupt(interrupt_id)
    except errors.BrokerError:
        return None


async def _clicked(
    store: Store,
    queue: Any,
    config: Slack,
    payload: dict[str, Any],
    who: auth.Principal,
    known: bool,
) -> None:
    actions = payload.get("actions") or [{}]
    action_id = str(actions[0].get("action_id") or "")
    interrupt_id, fp = slack_blocks.read_value(str(actions[0].get("value") or ""))
    if not known:
        await channel.refuse(
            store, interrupt_id, UNKNOWN_USER, channel=Channel.SLACK, principal=who
        )
        await _tell(config, payload, UNKNOWN_TEXT)
        return
    h = await _interrupt(store, interrupt_id)
    if h is None:
        return
    if action_id.startswith("choice:"):
        choice = shapes.find_choice(h.value, h.type, action_id.removeprefix("choice:"))
        if choice is None or choice.free:
            return
        try:
            await channel.answer(
                store,
                queue,
                h.id,
                choice.answer,
                channel=Channel.SLACK,
                principal=who,
                if_match=fingerprint.tags(fp),
            )
        except errors.BrokerError as exc:
            log.info("Slack answer to %s refused: %s", h.id, exc.code)
            await _tell(config, payload, f"Not answered: {exc.message}")
    elif action_id.startswith("modal:"):
        view = slack_blocks.modal(h, action_id.removeprefix("modal:"), {"i": h.id, "f": fp})
        trigger = payload.get("trigger_id")
        if view is None or not trigger:
            return
        client = config.client()
        try:
            await asyncio.to_thread(client.views_open, trigger_id=trigger, view=view)
        except (SlackClientError, OSError) as exc:
            log.warning("opening a Slack modal for %s failed: %s", h.id, exc)


async def _submitted(
    store: Store, queue: Any, view: dict[str, Any], who: auth.Principal, known: bool
) -> dict[str, str] | None:
    """Answers with a submitted modal; the refusals to show in it by block, or None."""
    problem = await _answered(store, queue, view, who, known)
    if isinstance(problem, str):
        return {_block(view): problem}
    return problem


def _block(view: dict[str, Any], path: Any = None) -> str:
    """The block of the modal an error is shown on."""
    if view.get("blocks"):
        return slack_review.error_block(view, path) or slack_blocks.INPUT_BLOCK
    return slack_blocks.INPUT_BLOCK


async def _answered(
    store: Store, queue: Any, view: dict[str, Any], who: auth.Principal, known: bool
) -> str | dict[str, str] | None:
    try:
        meta = json.loads(view.get("private_metadata") or "")
        interrupt_id, fp, what = str(meta["i"]), meta.get("f"), str(meta["what"])
    except (ValueError, KeyError, TypeError):
        return "This form is not one the broker made."
    if not known:
        await channel.refuse(
            store, interrupt_id, UNKNOWN_USER, channel=Channel.SLACK, principal=who
        )
        return UNKNOWN_TEXT
    h = await _interrupt(store, interrupt_id)
    if h is None:
        return "This question is gone."
    text = slack_blocks.submitted_text(view)
    comment = None
    if what == slack_review.WHAT and slack_review.reviewable(h.value):
        value, problems = slack_review.decisions(h.value, view, store.settings.max_json_depth)
        if problems:
            return problems
    elif what == "answer":
        value = _typed(h, text, store.settings.max_json_depth)
    elif what == "reject":
        choice = shapes.find_choice(h.value, h.type, "reject")
        if choice is None:
            return "This question cannot be rejected."
        value, comment = choice.answer, text.strip() or None
    elif slack_blocks.modal(h, what, {}) is not None and what.startswith("edit:"):
        action = h.value["action_requests"][int(what.removeprefix("edit:"))]
        try:
            args = jsonsafe.parse(text, store.settings.max_json_depth)
        except ValueError:
            return "The arguments must be JSON."
        name = action.get("name")
        value = {"decisions": [{"type": "edit", "edited_action": {"name": name, "args": args}}]}
    else:
        return "This form is not one the broker made."
    try:
        await channel.answer(
            store,
            queue,
            h.id,
            value,
            channel=Channel.SLACK,
            principal=who,
            comment=comment,
            if_match=fingerprint.tags(fp),
        )
    except errors.BrokerError as exc:
        return {_block(view, exc.details.get("path")): exc.message}
    return None


async def _tell(config: Slack, payload: dict[str, Any], text: str) -> None:
    """Tells the person who clicked why nothing happened, in a message only they see."""
    client = config.replies_to(payload.get("response_url"))
    if client is None:
        return
    try:
        await asyncio.to_thread(
            client.send, text=text[:2000], response_type="ephemeral", replace_original=False
        )
    except (SlackClientError, OSError) as exc:
        log.warning("telling a Slack user why their click did nothing failed: %s", exc)


def _typed(h: InterruptRecord, text: str, max_depth: int) -> Any:
    """Typed text as the answer: JSON when the declared schema wants other than text."""
    schema = declared_schema(h.value, h.response_schema)
    if schema is not None and schema.get("type") not in (None, "string"):
        try:
            return jsonsafe.parse(text, max_depth)
        except ValueError:
            return text
    return text
