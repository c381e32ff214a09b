"""The small server-rendered pages behind action links.

Self-contained: inline style, no scripts, no external requests. The headers forbid
framing (a one-click page must not be clickjacked), keep the token out of Referer,
and keep the page out of caches.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from fastapi.responses import HTMLResponse

from broker.core.comments import MAX_CHARS
from broker.core.shapes import Choice, is_hitl_request

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
_STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;"
    "color:#1d1d1f}h1{font-size:1.4rem}pre{background:#f4f4f6;padding:.75rem;overflow:auto;"
    "font-size:.85rem;max-height:20rem}button{font-size:1rem;padding:.5rem 1.25rem;"
    "border-radius:.4rem;border:1px solid #888;background:#fff;cursor:pointer}"
    "textarea{width:100%;min-height:6rem;font:inherit}.muted{color:#666;font-size:.9rem}"
)
NOTICES: dict[str, tuple[int, str, str]] = {
    # 404: a link the broker did not issue names nothing
    "tampered": (404, "This link is not valid", "It may have been cut short or changed."),
    "expired": (410, "This link has expired", "The question no longer takes answers here."),
    "used": (410, "This link was already used", "Each link answers once; nothing changed."),
    "superseded": (
        409,
        "This question is already closed",
        "Someone answered it already, or it expired or was cancelled; nothing changed.",
    ),
    "gone": (404, "This question no longer exists", "Nothing changed."),
    "changed": (
        412,
        "This question changed since you opened it",
        "What the agent asks now is not what this page showed, so your answer was not "
        "sent and nothing changed. Open the link again to review the new version.",
    ),
    "disabled": (404, "Action links are not enabled here", "Nothing changed."),
}


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def notice(kind: str, detail: str | None = None) -> HTMLResponse:
    status, title, text = NOTICES[kind]
    extra = f'<p class="muted">{escape(detail)}</p>' if detail else ""
    return page(title, f"<p>{escape(text)}</p>{extra}", status)


def _question(value: Any) -> str:
    text = value.get("content") if isinstance(value, dict) else value
    head = f"<p>{escape(text)}</p>" if isinstance(text, str) else ""
    if is_hitl_request(value):
        items = "".join(
            f'<li><pre style="white-space:pre-wrap">{escape(_action(a))}</pre></li>'
            for a in value["action_requests"]
        )
        head += f"<ul>{items}</ul>"
    details = json.dumps(value, indent=2, ensure_ascii=False, default=str)[:4000]
    return f"{head}<details><summary>Details</summary><pre>{escape(details)}</pre></details>"


def _action(action: Any) -> str:
    if not isinstance(action, dict):
        return str(action)
    described = action.get("description")
    if isinstance(described, str) and described:
        return described
    return f"{action.get('name')}: {json.dumps(action.get('args'), ensure_ascii=False)}"


def confirm(
    value: Any, agent_id: str, choice: Choice, token: str, fingerprint: str = ""
) -> HTMLResponse:
    """The page a GET shows: the question, the choice, and a button that answers (only
    the question shown: the form carries its fingerprint)."""
    field = (
        '<p><label for="answer">Your answer</label><br>'
        '<textarea id="answer" name="answer" required></textarea></p>'
        if choice.free
        else f"<p>Your choice: <strong>{escape(choice.label)}</strong></p>"
    )
    why = "Reason" if choice.name == "reject" else "Comment"
    note = (
        f'<p><label for="comment">{why} (optional)</label><br>'
        f'<textarea id="comment" name="comment" maxlength="{MAX_CHARS}"></textarea></p>'
    )
    body = (
        f'<p class="muted">Agent {escape(agent_id)} asks:</p>{_question(value)}'
        f'<form method="post"><input type="hidden" name="token" value="{escape(token)}">'
        f'<input type="hidden" name="fingerprint" value="{escape(fingerprint)}">'
        f'{field}{note}<button type="submit">'
        f"{escape('Send' if choice.free else choice.label)}</button></form>"
    )
    return page("Confirm your answer", body)


def done(choice: Choice, comment: str | None = None) -> HTMLResponse:
    """The page after an accepted answer; ``comment``: the one recorded with it."""
    what = "Your answer was sent." if choice.free else f"You chose: {choice.label}."
    noted = (
        f'<p>Your comment:</p><pre style="white-space:pre-wrap">{escape(comment)}</pre>'
        if comment
        else ""
    )
    return page("Thank you", f"<p>{escape(what)} The agent continues.</p>{noted}")


def refused(message: str) -> HTMLResponse:
    return page("That answer was not accepted", f"<p>{escape(message)}</p>", 422)
