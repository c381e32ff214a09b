"""Interrupt kinds and their choices (broker/core/shapes.py): one definition for action
links, their pages and the dashboard, which reads ``kind`` from the interrupt's JSON."""

from __future__ import annotations

from typing import Any

import pytest

from broker.core import shapes
from broker.core.records import InterruptRecord

REVIEW = {
    "action_requests": [{"name": "send_email", "args": {}}],
    "review_configs": [{"action_name": "send_email", "allowed_decisions": ["approve", "reject"]}],
}
SLOTS = {"slots": [{"label": "Mon 9:00", "iso": "2026-12-07T09:00:00Z"}]}


@pytest.mark.parametrize(
    ("value", "kind", "names"),
    [
        (REVIEW, "review", ["approve", "reject"]),
        (SLOTS, "slots", ["slot:0", "cancel"]),
        ({"slots": [{"label": "no time"}]}, "json", ["answer"]),  # not a slot without iso
        ({"type": "approval", "content": "ok?"}, "approval", ["approve", "reject"]),
        ({"type": "ask", "content": "name?"}, "ask", ["answer"]),
        ("free text", "json", ["answer"]),
        ({"a": 1}, "json", ["answer"]),
    ],
)
def test_each_kind_and_its_choices(value: Any, kind: str, names: list[str]) -> None:
    assert shapes.kind(value) == kind
    assert [c.name for c in shapes.choices(value, shapes.interrupt_type(value))] == names
    record = InterruptRecord.new(
        id="i", lg_id="l", run_id="r", thread_id="t", agent_id="a", value=value
    )
    assert record.view()["kind"] == kind


def test_a_slot_choice_answers_with_the_slot() -> None:
    choice = shapes.find_choice(SLOTS, None, "slot:0")
    assert choice is not None
    assert choice.answer == {"chosen_time": "2026-12-07T09:00:00Z", "chosen_label": "Mon 9:00"}
    assert shapes.find_choice(SLOTS, None, "slot:7") is None
