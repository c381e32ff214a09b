"""Reading people's answers to interrupts, which arrive as whatever JSON a client sent."""

from __future__ import annotations

from typing import Any

_REJECTIONS = frozenset(
    {
        "cancel",
        "cancelled",
        "canceled",
        "decline",
        "declined",
        "deny",
        "denied",
        "disapprove",
        "false",
        "n",
        "no",
        "reject",
        "rejected",
    }
)
_VERDICT_KEYS = ("approved", "approve", "approval", "ok")
_WORD_KEYS = ("type", "decision", "action", "answer", "value", "response")
_TEXT_KEYS = ("name", "answer", "value", "text", "content", "response", "agent_name")


def is_approval(answer: Any) -> bool:
    """Whether an answer to an approval interrupt approves.

    Only a recognisable refusal rejects: ``False``, ``None``, words such as "no" or
    "reject", ``{"approved": false}``, ``{"type": "reject"}`` or ``{"cancelled": true}``.
    Anything else (``True``, "yes", ``{"approved": true}``) approves.
    """
    if answer is None or answer is False:
        return False
    if isinstance(answer, str):
        return answer.strip().lower() not in _REJECTIONS
    if isinstance(answer, dict):
        if answer.get("cancelled") is True or answer.get("canceled") is True:
            return False
        for key in _VERDICT_KEYS:
            if key in answer:
                return is_approval(answer[key])
        for key in _WORD_KEYS:
            if isinstance(answer.get(key), str):
                return is_approval(answer[key])
    return True


def answer_text(answer: Any) -> str | None:
    """The text of a free-form answer: a string, or a dict's "name"/"answer"/... field."""
    if isinstance(answer, dict):
        for key in _TEXT_KEYS:
            if key in answer:
                return answer_text(answer[key])
        return None
    if isinstance(answer, str):
        return answer.strip() or None
    if isinstance(answer, int | float) and not isinstance(answer, bool):
        return str(answer)
    return None


def describe_verdict(answer: Any) -> str:
    """'approved' or 'rejected', with the reviewer's comment when they left one."""
    verdict = "approved" if is_approval(answer) else "rejected"
    if isinstance(answer, dict):
        comment = answer.get("comment") or answer.get("reason") or answer.get("message")
        if isinstance(comment, str) and comment.strip():
            return f"{verdict} ({comment.strip()})"
    return verdict
