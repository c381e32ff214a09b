"""The Slack modal that reviews a tool review of several actions, one decision each, and
the answer read from its submission.

The message of such a review (broker/core/slack_blocks.py) has a ``modal:review``
button. Its modal shows, per action in order, the action, a decision (radio buttons
offering only the approve, edit and reject its review config allows), the arguments as
JSON (prefilled; used when edit is chosen) and a reason (used when reject is chosen).
The submission becomes ``{"decisions": [...]}``, one per action in order, or the errors
to show in the modal, each naming the block it is about.
"""

from __future__ import annotations

import json
from typing import Any

from slack_sdk.models.blocks import (
    Block,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    RadioButtonsElement,
    SectionBlock,
)
from slack_sdk.models.views import View

from broker.core import jsonsafe, mail, shapes

WHAT = "review"
"""The modal's name: the button's action id is ``modal:review``."""
MAX_ACTIONS = 20
"""At most this many actions fit one modal (Slack allows 100 blocks, four per action)."""
DECISIONS = ("approve", "edit", "reject")
_LABELS = {"approve": "Approve", "edit": "Edit (the arguments below)", "reject": "Reject"}
_MAX_ARGS = 3000  # a text input holds at most 3000 characters


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def offered(value: dict[str, Any], action: dict[str, Any]) -> list[str]:
    """The decisions the modal offers on ``action``: those of approve, edit and reject its
    review config allows."""
    allowed = shapes.allowed_decisions(value, action)
    return [d for d in DECISIONS if d in allowed]


def reviewable(value: Any) -> bool:
    """Whether the interrupt is a tool review the modal can answer: several actions (at
    most ``MAX_ACTIONS``), each allowing approve, edit or reject."""
    if shapes.kind(value) != "review":
        return False
    actions = value["action_requests"]
    return (
        1 < len(actions) <= MAX_ACTIONS
        and all(isinstance(a, dict) for a in actions)
        and all(offered(value, a) for a in actions)
    )


def _args(action: dict[str, Any]) -> str:
    return json.dumps(action.get("args"), indent=2, ensure_ascii=False, default=str)


def _action_blocks(value: dict[str, Any], n: int, action: dict[str, Any]) -> list[Block]:
    choices = offered(value, action)
    about = f"*{n + 1}. {action.get('name')}*"
    if action.get("description"):
        about += f"\n{_clip(str(action['description']), 500)}"
    if "edit" not in choices:
        about += f"\n```{_clip(_args(action), 2000)}```"
    options = [Option(value=d, text=PlainTextObject(text=_LABELS[d])) for d in choices]
    out: list[Block] = [
        SectionBlock(block_id=f"action:{n}", text=MarkdownTextObject(text=about)),
        InputBlock(
            block_id=f"decision:{n}",
            label=PlainTextObject(text=_clip(f"Decision on {action.get('name')}", 150)),
            element=RadioButtonsElement(action_id="decision", options=options),
        ),
    ]
    if "edit" in choices:
        args = _args(action)
        out.append(
            InputBlock(
                block_id=f"args:{n}",
                label=PlainTextObject(text="Arguments (JSON), used if you edit"),
                optional=True,
                element=PlainTextInputElement(
                    action_id="args",
                    multiline=True,
                    initial_value=args if len(args) <= _MAX_ARGS else None,
                ),
            )
        )
    if "reject" in choices:
        out.append(
            InputBlock(
                block_id=f"reason:{n}",
                label=PlainTextObject(text="Reason, if you reject (optional)"),
                optional=True,
                element=PlainTextInputElement(action_id="reason", multiline=True),
            )
        )
    return out


def modal(value: dict[str, Any], agent_id: str, callback: str, meta: str) -> dict[str, Any]:
    """The review modal of a reviewable interrupt value (see ``reviewable``)."""
    asked = _clip(mail.question(value), 2000)
    blocks: list[Block] = [
        SectionBlock(text=MarkdownTextObject(text=f"*{agent_id}* asks: {asked}"))
    ]
    for n, action in enumerate(value["action_requests"]):
        blocks.extend(_action_blocks(value, n, action))
    view = View(
        type="modal",
        callback_id=callback,
        private_metadata=meta,
        title=PlainTextObject(text="Review"),
        submit=PlainTextObject(text="Send"),
        close=PlainTextObject(text="Cancel"),
        blocks=blocks,
    )
    return view.to_dict()


def _field(view: dict[str, Any], block: str, action: str) -> dict[str, Any]:
    values = ((view.get("state") or {}).get("values") or {}).get(block) or {}
    field = values.get(action)
    return field if isinstance(field, dict) else {}


def decisions(
    value: dict[str, Any], view: dict[str, Any], max_depth: int
) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """The answer a submitted review modal gives, or None and the errors by block."""
    out: list[dict[str, Any]] = []
    problems: dict[str, str] = {}
    for n, action in enumerate(value["action_requests"]):
        name = action.get("name") if isinstance(action, dict) else None
        chosen = (_field(view, f"decision:{n}", "decision").get("selected_option") or {}).get(
            "value"
        )
        allowed = offered(value, action) if isinstance(action, dict) else []
        if chosen not in allowed:
            problems[f"decision:{n}"] = (
                f"{name} may not be decided with {chosen}." if chosen else "Choose a decision."
            )
            continue
        if chosen == "approve":
            out.append({"type": "approve"})
        elif chosen == "reject":
            reason = str(_field(view, f"reason:{n}", "reason").get("value") or "").strip()
            out.append({"type": "reject", "message": reason} if reason else {"type": "reject"})
        else:
            text = str(_field(view, f"args:{n}", "args").get("value") or "")
            try:
                args = jsonsafe.parse(text, max_depth)
            except ValueError:
                problems[f"args:{n}"] = "The arguments must be JSON."
                continue
            if not isinstance(args, dict):
                problems[f"args:{n}"] = "The arguments must be a JSON object."
                continue
            out.append({"type": "edit", "edited_action": {"name": name, "args": args}})
    return (None, problems) if problems else ({"decisions": out}, {})


def error_block(view: dict[str, Any], path: Any = None) -> str | None:
    """The input block of a submitted modal that an error belongs on: the decision of the
    action a refusal's JSON pointer (``/decisions/<n>/…``) names, else the first input."""
    inputs = [
        str(b.get("block_id"))
        for b in view.get("blocks") or []
        if isinstance(b, dict) and b.get("type") == "input"
    ]
    if isinstance(path, str) and path.startswith("/decisions/"):
        n = path.split("/")[2]
        if f"decision:{n}" in inputs:
            return f"decision:{n}"
    return inputs[0] if inputs else None
