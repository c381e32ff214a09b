"""Interrupt kinds and the choices a person has on each: the one definition that links,
link pages and every other answer channel share.

The kinds, by the interrupt's value (``kind``; every interrupt's JSON carries it, and the
dashboard builds its form from it):
- ``review``, a tool review (LangChain's ``HumanInTheLoopMiddleware``): ``action_requests``
  and ``review_configs``; answered with one decision per action;
- ``slots``, a slot choice: ``slots``, a list of ``{label, iso}``; answered with the chosen
  slot or ``{"cancelled": true}``;
- ``approval``: ``type`` is ``"approval"``; answered with true or false;
- ``ask``: ``type`` is ``"ask"``; answered with text;
- ``json``: anything else; a free answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def is_hitl_request(value: Any) -> bool:
    """Whether the value is a tool review request (``HumanInTheLoopMiddleware``)."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("action_requests"), list)
        and isinstance(value.get("review_configs"), list)
    )


def interrupt_type(value: Any) -> str | None:
    """The interrupt's type: ``value["type"]`` when it is a string, ``tool_approval`` for a
    tool review, otherwise None."""
    if isinstance(value, dict):
        t = value.get("type")
        if isinstance(t, str) and t:
            return t
    return "tool_approval" if is_hitl_request(value) else None


def allowed_decisions(value: dict[str, Any], action: dict[str, Any]) -> list[str]:
    """The decision types the review config of ``action`` allows."""
    for config in value["review_configs"]:
        if isinstance(config, dict) and config.get("action_name") == action.get("name"):
            return [str(d) for d in config.get("allowed_decisions") or []]
    return []


def _is_slot(slot: Any) -> bool:
    return (
        isinstance(slot, dict)
        and isinstance(slot.get("label"), str)
        and isinstance(slot.get("iso"), str)
    )


def kind(value: Any) -> str:
    """The interrupt's kind: review, slots, approval, ask or json (see the module docstring)."""
    if is_hitl_request(value):
        return "review"
    if isinstance(value, dict):
        slots = value.get("slots")
        if isinstance(slots, list) and slots and all(_is_slot(s) for s in slots):
            return "slots"
        if value.get("type") in ("approval", "ask"):
            return str(value["type"])
    return "json"


@dataclass(frozen=True)
class Choice:
    name: str
    label: str
    answer: Any = None
    free: bool = False
    """A form: the person types the answer."""


def choices(value: Any, itype: str | None) -> list[Choice]:
    """The choices a person can make on an interrupt, by its kind."""
    shape = kind(value)
    if shape == "review":
        actions = value["action_requests"]
        out = []
        for decided, label, decision in (
            ("approve", "Approve", {"type": "approve"}),
            ("reject", "Reject", {"type": "reject"}),
        ):
            if all(decided in allowed_decisions(value, a) for a in actions):
                out.append(Choice(decided, label, {"decisions": [decision] * len(actions)}))
        return out
    if shape == "slots":
        out = [
            Choice(
                f"slot:{n}",
                slot["label"],
                {"chosen_time": slot["iso"], "chosen_label": slot["label"]},
            )
            for n, slot in enumerate(value["slots"])
        ]
        return [*out, Choice("cancel", "None of these (cancel)", {"cancelled": True})]
    if shape == "approval" or itype == "approval":
        return [Choice("approve", "Approve", True), Choice("reject", "Reject", False)]
    return [Choice("answer", "Answer", free=True)]


def find_choice(value: Any, itype: str | None, name: str) -> Choice | None:
    for choice in choices(value, itype):
        if choice.name == name:
            return choice
    return None


def is_tool_call_request(value: Any) -> bool:
    """Whether the value is one gated tool call (``HumanInTheLoopMiddleware`` in
    ``per_call`` mode): answered with a single decision."""
    return (
        isinstance(value, dict)
        and value.get("type") == "tool_approval"
        and isinstance(value.get("tool_call_id"), str)
    )


def with_reject_reason(value: Any, answer: Any, comment: str | None) -> Any:
    """The answer to a tool review with the person's comment as the reason of each
    reject decision that gives none (``RejectDecision.message``, which the middleware
    hands the model); any other answer unchanged. The channel applies it before the
    answer is checked, so the graph, the resolution and the audit see one value."""
    if not comment:
        return answer

    def reasoned(decision: Any) -> Any:
        if isinstance(decision, dict) and decision.get("type") == "reject":
            if "message" not in decision:
                return {**decision, "message": comment}
        return decision

    if is_hitl_request(value) and isinstance(answer, dict):
        decisions = answer.get("decisions")
        if isinstance(decisions, list):
            return {**answer, "decisions": [reasoned(d) for d in decisions]}
    if is_tool_call_request(value):
        return reasoned(answer)
    return answer
