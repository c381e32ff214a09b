"""Answers to an interrupt decided by several people (broker/core/rules.py): each is a
vote, recorded by the vote transition, and the vote that meets the rule resolves the
interrupt and queues its run in that same step.

A person votes once (their subject; again: 409 ``already_voted``). Who may vote: for a
quorum, a person one of whose names is its ``of``; for a chain, one whose names hold
its current step (the step after the approvals so far; anyone else: 403
``not_your_turn``). Others get 403 ``not_eligible``. A principal answering on a
person's behalf (``interrupts:on_behalf``: a service, an admin key, auth off) is no
person and counts toward no quorum: its answer decides outright, recorded as a vote
with ``decides: true``. An action link carries no identity to vote with: it is
refused (403 ``not_eligible``).

The graph gets, for an approval, ``{"approved": bool, "votes": [...]}``; for a tool
review (or one gated tool call), the deciding vote's answer, so the middleware reads
decisions as always. Either way the resolution carries ``votes``, and so does its
signed receipt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from broker.core import admission, audit, auth, errors, jobs, metrics, rules, shapes
from broker.core.codec import iso, now_ms
from broker.core.records import Channel, InterruptRecord, InterruptStatus
from broker.core.store import Store

Resolution = Callable[..., dict[str, Any]]
"""Makes a resolution with its signed receipt: (store, interrupt, value, resolved_by,
channel, principal, time ms, *, comment, votes)."""
TRIES = 2 * rules.MAX_QUORUM + 2
"""A vote is made again only when another was recorded since the interrupt was read;
no rule takes more than 2 * MAX_QUORUM - 1 votes before one decides."""
NO_LINK = (
    "this interrupt is decided by the votes of people: a link carries no identity to "
    "vote with; sign in to vote"
)


async def cast(
    store: Store,
    h: InterruptRecord,
    answer: Any,
    who: auth.Principal,
    channel: Channel,
    resolved_by: str | None,
    comment: str | None,
    job: jobs.Job | None,
    fingerprint: str | None,
    resolution: Resolution,
) -> dict[str, Any]:
    """Records ``who``'s vote (``answer`` approves or rejects) on ``h`` and returns the
    interrupt with it; when the vote meets the rule, the interrupt is resolved (its
    resolution made by ``resolution``, ``channel._resolution``, with its receipt)."""
    try:
        if channel == Channel.LINK:
            raise errors.NotEligible(NO_LINK)
        approve = rules.vote_of(h.value, answer)
        names = admission.answerer(who, channel)
        for _ in range(TRIES):
            res, response = await _once(
                store,
                h,
                answer,
                approve,
                who,
                names,
                channel,
                resolved_by,
                comment,
                job,
                fingerprint,
                resolution,
            )
            if res[0] in ("voted", "decided"):
                metrics.count(channel, metrics.ACCEPTED)
                return response
            if res[0] != "stale":
                raise _refused(h.id, res)
            h = await store.interrupt(h.id)
        raise errors.InterruptClosed("the votes on this interrupt kept changing; try again")
    except errors.BrokerError as exc:
        await admission.audit_refusal(
            store, h.id, answer, resolved_by, channel, who, exc.code, comment
        )
        raise


async def _once(
    store: Store,
    h: InterruptRecord,
    answer: Any,
    approve: bool,
    who: auth.Principal,
    names: list[str] | None,
    channel: Channel,
    resolved_by: str | None,
    comment: str | None,
    job: jobs.Job | None,
    fingerprint: str | None,
    resolution: Resolution,
) -> tuple[list[Any], dict[str, Any]]:
    """One try of the vote transition, made for the votes ``h`` holds."""
    ts = now_ms()
    person = admission.person(who)
    vote: dict[str, Any] = {"by": person, "vote": approve, "at": iso(ts), "comment": comment}
    if names is None:
        vote |= {"key_id": who.key_id, "resolved_by": resolved_by, "decides": True}
    votes = [*h.votes, vote]
    decision = rules.outcome(h.rule or {}, votes)
    resolved: dict[str, Any] | None = None
    if decision is None:
        after = replace(h, votes=tuple(votes), updated_ms=ts)
    else:
        by_decisions = shapes.is_hitl_request(h.value) or shapes.is_tool_call_request(h.value)
        value = answer if by_decisions else {"approved": decision, "votes": votes}
        resolved = resolution(
            store, h, value, resolved_by, channel, who, ts, comment=comment, votes=votes
        )
        after = replace(
            h,
            votes=tuple(votes),
            status=InterruptStatus.RESOLVED,
            resolution=resolved,
            updated_ms=ts,
        )
    actor = resolved_by or who.actor
    entry = audit.entry(
        actor=actor,
        key_id=who.key_id,
        channel=channel,
        outcome="voted",
        payload_digest=audit.payload_sha256(answer),
        at_ms=ts,
        person=person,
        comment=comment,
    ) | {"vote": approve}
    decided = audit.entry(
        actor=actor,
        key_id=who.key_id,
        channel=channel,
        outcome=audit.ACCEPTED,
        payload_digest=audit.payload_sha256(resolved["value"]) if resolved else None,
        at_ms=ts,
        person=person,
        comment=comment,
    )
    res = await store.vote_script(
        h.id,
        vote=vote,
        voter=who.person.subject if who.person is not None and names is not None else "",
        names=names,
        seen=len(h.votes),
        resolution=resolved,
        voted_event={
            "interrupt_id": h.id,
            "type": h.type,
            "vote": vote,
            "approval": after.approval(),
        },
        resolved_event={"interrupt_id": h.id, "type": h.type, "resolution": resolved},
        vote_entry=entry,
        decision_entry=decided,
        fingerprint=fingerprint,
        job=(job.keys, [job.job_id, job.payload, job.ttl_ms, job.wake]) if job else None,
    )
    return res, after.view()


def _refused(interrupt_id: str, res: list[Any]) -> errors.BrokerError:
    """The error of a vote the transition refused (resolve's outcomes as resolve's)."""
    outcome = res[0]
    if outcome == "already_voted":
        return errors.AlreadyVoted("your vote on this interrupt is already recorded")
    if outcome == "not_your_turn":
        return errors.NotYourTurn(
            f"this chain of approvals waits for {res[1] or 'nobody'}; you are not that step",
            step=res[1] or None,
        )
    if outcome == "not_eligible":
        return errors.NotEligible(
            "this interrupt is decided by the votes of others; you are not among them"
        )
    try:
        admission.outcome(interrupt_id, res, "", {})
    except errors.BrokerError as exc:
        return exc
    return errors.InterruptClosed(f"interrupt {interrupt_id} takes no vote now ({outcome})")
