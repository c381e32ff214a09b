"""Decision rules as declared in an interrupt's value (broker/core/rules.py;
docs/design.md, "Quorum and chains"): good ones are kept as declared, bad ones fail
closed, and votes decide as the rule says."""

from __future__ import annotations

from typing import Any

import pytest

from broker.core import errors, rules

APPROVAL = {"type": "approval", "content": "pay?"}
REVIEW = {
    "action_requests": [{"name": "send_email", "args": {"to": "a@example.com"}}],
    "review_configs": [{"action_name": "send_email", "allowed_decisions": ["approve", "reject"]}],
}


def declared(approval: Any, value: dict[str, Any] = APPROVAL) -> tuple[rules.Rule | None, bool]:
    return rules.policy({**value, "approval": approval}, about="test")


def test_good_rules_are_kept_as_declared() -> None:
    rule, broken = declared({"quorum": 2, "of": "group:finance"})
    assert not broken and rule is not None
    assert rule.record() == {"quorum": 2, "of": "group:finance", "reject": "first"}
    rule, _ = declared({"chain": ["group:legal", "user:CFO@Example.com"]}, REVIEW)
    assert rule is not None
    assert rule.record() == {"chain": ["group:legal", "user:cfo@example.com"], "reject": "first"}
    rule, _ = declared({"quorum": 3, "of": "user:x", "reject": "quorum"})
    assert rule is not None and rule.reject == "quorum"
    assert rules.policy(APPROVAL) == (None, False)  # none declared: nothing kept


@pytest.mark.parametrize(
    "approval",
    [
        "two of finance",
        {"quorum": 2},
        {"quorum": 2, "of": "finance"},
        {"quorum": 0, "of": "group:finance"},
        {"quorum": True, "of": "group:finance"},
        {"quorum": 51, "of": "group:finance"},
        {"quorum": 2, "of": "group:finance", "reject": "never"},
        {"quorum": 2, "of": "group:finance", "chain": ["group:legal"]},
        {"chain": []},
        {"chain": ["group:legal", "cfo"]},
        {"chain": ["group:legal"], "reject": "quorum"},
        {"chain": ["group:legal"], "mode": "strict"},
    ],
)
def test_bad_declarations_fail_closed(approval: Any) -> None:
    assert declared(approval) == (None, True)


def test_a_rule_on_a_question_votes_cannot_decide_fails_closed() -> None:
    ask = {"type": "ask", "content": "what now?"}
    assert declared({"quorum": 2, "of": "group:finance"}, ask) == (None, True)


def test_answers_are_votes_only_when_they_approve_or_reject() -> None:
    assert rules.vote_of(APPROVAL, True) is True
    assert rules.vote_of(APPROVAL, False) is False
    assert rules.vote_of(REVIEW, {"decisions": [{"type": "approve"}]}) is True
    assert rules.vote_of(REVIEW, {"decisions": [{"type": "reject", "message": "no"}]}) is False
    for bad in ("yes", {"decisions": [{"type": "edit"}]}, {"decisions": []}):
        with pytest.raises(errors.InvalidAnswer):
            rules.vote_of(REVIEW if isinstance(bad, dict) else APPROVAL, bad)


def votes(*cast: bool) -> list[dict[str, Any]]:
    return [{"vote": v} for v in cast]


def test_votes_decide_as_the_rule_says() -> None:
    two = {"quorum": 2, "of": "group:finance", "reject": "first"}
    assert rules.outcome(two, votes(True)) is None
    assert rules.outcome(two, votes(True, True)) is True
    assert rules.outcome(two, votes(True, False)) is False
    counted = {**two, "reject": "quorum"}
    assert rules.outcome(counted, votes(False, True)) is None
    assert rules.outcome(counted, votes(False, True, False)) is False
    chain = {"chain": ["group:legal", "user:cfo"], "reject": "first"}
    assert rules.outcome(chain, votes(True)) is None
    assert rules.outcome(chain, votes(True, True)) is True
    assert rules.outcome(chain, votes(True, False)) is False
    assert rules.outcome(two, [{"vote": False, "decides": True}]) is False


CONFIG = [
    {"agent": "payments", "type": "approval", "approval": {"quorum": 2, "of": "group:finance"}},
    {"approval": {"chain": ["group:legal"]}},
]


def test_configured_rules_apply_where_the_value_declares_none() -> None:
    rule, broken = rules.policy(APPROVAL, "payments", "approval", CONFIG)
    assert not broken and rule is not None and rule.of == "group:finance"
    rule, _ = rules.policy(REVIEW, "other", "tool_approval", CONFIG)
    assert rule is not None and rule.chain == ("group:legal",)
    # the value wins; a question votes cannot decide takes no configured rule
    own = {**APPROVAL, "approval": {"quorum": 1, "of": "user:boss"}}
    rule, _ = rules.policy(own, "payments", "approval", CONFIG)
    assert rule is not None and rule.of == "user:boss"
    assert rules.policy({"type": "ask"}, "payments", "ask", CONFIG) == (None, False)


@pytest.mark.parametrize(
    "config",
    [
        [{"approval": {"quorum": 2}}],
        [{"agent": 1, "approval": {"chain": ["group:legal"]}}],
        [{"approval": {"chain": ["group:legal"]}, "assignees": ["group:x"]}],
        ["quorum"],
    ],
)
def test_a_bad_configured_rule_stops_the_process(config: list[Any]) -> None:
    with pytest.raises(rules.RuleError, match="BROKER_APPROVAL_RULES rule 0"):
        rules.configured(config)
