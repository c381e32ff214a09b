"""The Slack messages and modals of an interrupt, built with slack_sdk's Block Kit models.

A message asks the question and carries one button per choice, by the interrupt's kind
(broker/core/shapes.py): approve and reject for an approval; one per slot, and cancel,
for a slot choice; for a tool review, approve, reject (a modal asks the reason) and, for
a review of one action that allows it, edit (a modal shows the action's arguments as
JSON), and for a review of several actions, review (a modal with a decision per action:
broker/core/slack_review.py); for a question to answer in words, a button that opens a
modal with a text box.

Every button's action id is ``choice:<name>`` (answers at once with that choice) or
``modal:<what>`` (opens a modal); its value is the interrupt id and the fingerprint of
the question shown, so an answer to a question that changed since is refused. A choice's
answer is derived from the interrupt when the button is clicked, never taken from Slack.
"""

from __future__ import annotations

import json
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from broker.core import mail, shapes, slack_review
from broker.core.records import InterruptRecord

CALLBACK = "broker_answer"
"""The callback id of every modal the broker opens."""
INPUT_BLOCK, INPUT_ACTION = "answer", "text"
_MAX_TEXT = 2900  # a section's text is at most 3000 characters


def _clip(text: str, limit: int = _MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def button_value(h: InterruptRecord) -> str:
    return f"{h.id} {h.fingerprint}"


def read_value(value: str) -> tuple[str, str | None]:
    """The interrupt id and fingerprint a button carries."""
    iid, _, fp = value.partition(" ")
    return iid, fp or None


def _buttons(h: InterruptRecord) -> list[ButtonElement]:
    value = button_value(h)
    shape = shapes.kind(h.value)
    out: list[ButtonElement] = []

    def add(action_id: str, label: str, style: str | None = None) -> None:
        out.append(
            ButtonElement(text=_clip(label, 75), action_id=action_id, value=value, style=style)
        )

    if shape == "review":
        actions = h.value["action_requests"]
        for choice in shapes.choices(h.value, h.type):
            if choice.name == "approve":
                add("choice:approve", "Approve", "primary")
            else:
                add("modal:reject", "Reject…", "danger")
        if len(actions) == 1 and "edit" in shapes.allowed_decisions(h.value, actions[0]):
            add("modal:edit:0", "Edit…")
        if slack_review.reviewable(h.value):
            add(f"modal:{slack_review.WHAT}", "Review…")
        return out
    for choice in shapes.choices(h.value, h.type):
        if choice.free:
            add("modal:answer", "Answer…", "primary")
        else:
            style = {"approve": "primary", "reject": "danger"}.get(choice.name)
            add(f"choice:{choice.name}", choice.label, style)
    return out


def _details(h: InterruptRecord) -> list[Block]:
    if shapes.kind(h.value) != "review":
        return []
    out: list[Block] = []
    for action in h.value["action_requests"]:
        if not isinstance(action, dict):
            continue
        args = json.dumps(action.get("args"), indent=2, ensure_ascii=False, default=str)
        text = f"*{action.get('name')}*\n```{_clip(args, 2800)}```"
        out.append(SectionBlock(text=MarkdownTextObject(text=text)))
    return out


def _question(h: InterruptRecord) -> tuple[str, SectionBlock]:
    asked = mail.question(h.value)
    text = f"Agent {h.agent_id} asks: {asked}"
    block = SectionBlock(
        block_id="question", text=MarkdownTextObject(text=_clip(f"*{h.agent_id}* asks: {asked}"))
    )
    return _clip(text), block


def _voter(vote: dict[str, Any]) -> str:
    by = vote.get("by") or {}
    who = by.get("email") or by.get("sub") or vote.get("resolved_by") or "someone"
    return f"{'✅' if vote.get('vote') else '❌'} {who}"


def _votes(h: InterruptRecord) -> list[Block]:
    """The rule of an interrupt decided by votes, and the votes so far."""
    rule = h.rule
    if not rule:
        return []
    if "chain" in rule:
        steps = rule["chain"]
        asked = f"Needs each of, in order: {', '.join(steps)}"
        if len(h.votes) < len(steps):
            asked += f" (now: {steps[len(h.votes)]})"
    else:
        asked = f"Needs {rule.get('quorum')} approvals of {rule.get('of')}"
    cast = ", ".join(_voter(v) for v in h.votes) if h.votes else "none yet"
    text = _clip(f"{asked}. Votes so far: {cast}")
    return [ContextBlock(block_id="votes", elements=[MarkdownTextObject(text=text)])]


def message(h: InterruptRecord) -> tuple[str, list[dict[str, Any]]]:
    """The message asking interrupt ``h``: its fallback text and its blocks (with the
    votes so far, for one decided by votes)."""
    text, question = _question(h)
    blocks: list[Block] = [
        question,
        *_details(h),
        *_votes(h),
        ActionsBlock(block_id=f"answer:{h.id}", elements=_buttons(h)),
        ContextBlock(elements=[MarkdownTextObject(text=f"Interrupt `{h.id}`")]),
    ]
    return text, [b.to_dict() for b in blocks]


def outcome(h: InterruptRecord) -> tuple[str, list[dict[str, Any]]]:
    """The message once the interrupt is decided or closed: who answered, what, where;
    no buttons."""
    text, question = _question(h)
    status = str(h.status)
    res = h.resolution or {}
    if status in ("resolved", "accepted") or (status == "expired" and res):
        person = res.get("person") or {}
        who = (
            person.get("email")
            or person.get("sub")
            or res.get("resolved_by")
            or res.get("key_id")
            or "someone"
        )
        if res.get("channel") == "expiry":
            who = "the deadline (default answer)"
        said = f"*{_label(h, res.get('value'))}* by {who} via {res.get('channel')}"
        if res.get("comment"):
            said += f": “{_clip(str(res['comment']), 300)}”"
        line = f"Answered: {said}" if status != "accepted" else f"Answered (can be undone): {said}"
    elif status == "expired":
        line = "Expired without an answer"
    elif status == "cancelled":
        line = "Closed: the run no longer waits for this answer"
    else:
        line = f"Status: {status}"
    blocks: list[Block] = [
        question,
        SectionBlock(block_id="outcome", text=MarkdownTextObject(text=_clip(line))),
        ContextBlock(elements=[MarkdownTextObject(text=f"Interrupt `{h.id}`")]),
    ]
    return f"{text} ({line})", [b.to_dict() for b in blocks]


def _label(h: InterruptRecord, value: Any) -> str:
    """The answer as the person saw it: the choice's label, or the answer itself."""
    for choice in shapes.choices(h.value, h.type):
        if not choice.free and choice.answer == value:
            return choice.label
    if isinstance(value, dict) and isinstance(value.get("decisions"), list):
        return ", ".join(str((d or {}).get("type")) for d in value["decisions"])
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return _clip(text, 300)


def modal(h: InterruptRecord, what: str, metadata: dict[str, Any]) -> dict[str, Any] | None:
    """The modal a ``modal:<what>`` button opens, or None when ``what`` is not one the
    interrupt has. ``metadata`` rides along to the submission."""
    meta = json.dumps({**metadata, "what": what}, separators=(",", ":"))
    asked = _clip(mail.question(h.value), 2000)
    if what == slack_review.WHAT:
        if not slack_review.reviewable(h.value):
            return None
        return slack_review.modal(h.value, h.agent_id, CALLBACK, meta)
    if what == "answer" and shapes.find_choice(h.value, h.type, "answer") is not None:
        title, label, optional, initial = "Answer", "Your answer", False, None
    elif what == "reject" and shapes.find_choice(h.value, h.type, "reject") is not None:
        title, label, optional, initial = "Reject", "Reason (optional)", True, None
    elif what.startswith("edit:") and shapes.kind(h.value) == "review":
        n = what.removeprefix("edit:")
        actions = h.value["action_requests"]
        if not n.isdigit() or int(n) >= len(actions) or not isinstance(actions[int(n)], dict):
            return None
        args = actions[int(n)].get("args")
        title, label, optional = "Edit", f"Arguments of {actions[int(n)].get('name')} (JSON)", False
        initial = json.dumps(args, indent=2, ensure_ascii=False, default=str)[:3000]
    else:
        return None
    view = View(
        type="modal",
        callback_id=CALLBACK,
        private_metadata=meta,
        title=PlainTextObject(text=title),
        submit=PlainTextObject(text="Send"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            SectionBlock(text=MarkdownTextObject(text=f"*{h.agent_id}* asks: {asked}")),
            InputBlock(
                block_id=INPUT_BLOCK,
                label=PlainTextObject(text=label),
                optional=optional,
                element=PlainTextInputElement(
                    action_id=INPUT_ACTION, multiline=True, initial_value=initial
                ),
            ),
        ],
    )
    return view.to_dict()


def submitted_text(view: dict[str, Any]) -> str:
    """What the person typed in a modal's text box."""
    values = ((view.get("state") or {}).get("values") or {}).get(INPUT_BLOCK) or {}
    return str((values.get(INPUT_ACTION) or {}).get("value") or "")
