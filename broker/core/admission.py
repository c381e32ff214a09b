"""The checks an answer passes before the resolve transition, in this order: the
interrupt exists and the principal sees it (404 otherwise, so a key limited to other
agents learns nothing), the comment is one the broker keeps (422; a tool review's rejects
take it as their reason), the principal holds the resolve scope (403), and the on-behalf
scope to name the answerer in ``resolved_by`` on the REST channel (403; the other
channels name it themselves), is among the interrupt's assignees when it has any (403
``not_assignee``, broker/core/assignment.py), answers the question as it now stands
when it names a fingerprint (412 ``fingerprint_mismatch``, broker/core/fingerprint.py),
and the answer meets the interrupt's contracts (422). A refusal of a visible interrupt
is audited. ``outcome`` turns the resolve transition's reply into the answer's body or
its error.
"""

from __future__ import annotations

from typing import Any

from broker.core import assignment, audit, auth, comments, errors, fingerprint, schemas, shapes
from broker.core.codec import loads
from broker.core.records import Channel, InterruptRecord
from broker.core.store import Store

NOT_ASSIGNEE = (
    "this interrupt is assigned to others; one of its assignees answers it, or a key "
    f"with the {auth.ON_BEHALF!r} scope answers for them"
)


def answerer(who: auth.Principal, channel: Channel) -> list[str] | None:
    """The names the resolve step checks the interrupt's assignees against. An action
    link is a credential of its own, minted for its recipient: it answers whoever is
    assigned."""
    return None if channel == Channel.LINK else assignment.checked_names(who)


def person(who: auth.Principal | None) -> dict[str, Any] | None:
    return who.person.record() if who is not None and who.person is not None else None


async def checked(
    store: Store,
    interrupt_id: str,
    value: Any,
    resolved_by: str | None,
    channel: Channel,
    who: auth.Principal,
    comment: str | None,
    h: InterruptRecord | None = None,
    if_match: list[str] | None = None,
) -> tuple[InterruptRecord, Any, str | None]:
    """The interrupt, the answer to record (a tool review's rejects given the comment
    as their reason) and the comment, once visibility, scope, the comment, the
    fingerprint the answer names (``if_match``, ``fingerprint.tags``) and the answer's
    contracts pass; a refusal of a visible interrupt is audited."""
    if h is None:
        h = await visible(store, who, interrupt_id)
    elif not who.sees(h.agent_id):
        raise errors.InterruptNotFound(f"no interrupt with id {interrupt_id!r}")
    noted: str | None = None  # a refused comment is not kept
    try:
        # first, so every refusal below is audited with the comment the attempt carried
        noted = comments.checked(comment)
        value = shapes.with_reject_reason(h.value, value, noted)
        if not who.allows(auth.RESOLVE):
            raise errors.Forbidden(
                f"{named(who)} lacks the {auth.RESOLVE!r} scope", scope=auth.RESOLVE
            )
        if resolved_by is not None and channel == Channel.REST and not who.allows(auth.ON_BEHALF):
            # a name the client chose: only a service trusted to answer for people may
            # record one, or anyone could answer as anyone
            resolved_by = None  # the refusal is audited under the caller, not the name
            raise errors.Forbidden(
                f"{named(who)} lacks the {auth.ON_BEHALF!r} scope, which naming the "
                "answerer in resolved_by needs; leave resolved_by out to answer as yourself",
                scope=auth.ON_BEHALF,
            )
        if h.assignees and channel != Channel.LINK and not assignment.may_answer(who, h.assignees):
            raise errors.NotAssignee(NOT_ASSIGNEE)
        if not fingerprint.holds(if_match, h.fingerprint):
            raise mismatch(h.fingerprint)
        schemas.check_answer(h.value, h.response_schema, value)
    except errors.BrokerError as exc:
        await audit_refusal(store, h.id, value, resolved_by, channel, who, exc.code, noted)
        raise
    return h, value, noted


async def visible(store: Store, who: auth.Principal, interrupt_id: str) -> InterruptRecord:
    """The interrupt, or InterruptNotFound for one ``who`` may not see: a key learns
    nothing of other agents' records, expired ones included."""
    try:
        h = await store.interrupt(interrupt_id)
    except errors.InterruptRecordExpired as exc:
        if not who.sees(exc.agent_id):
            raise errors.InterruptNotFound(f"no interrupt with id {interrupt_id!r}") from None
        raise
    if not who.sees(h.agent_id):
        raise errors.InterruptNotFound(f"no interrupt with id {interrupt_id!r}")
    return h


def mismatch(current: str) -> errors.FingerprintMismatch:
    return errors.FingerprintMismatch(
        "this question changed since the answer was given to it (its fingerprint is no "
        "longer the one sent in If-Match); read the interrupt again and answer what it "
        "asks now",
        fingerprint=current,
    )


def named(who: auth.Principal) -> str:
    return f"{'the person' if who.person else 'the API key'} {who.actor!r}"


async def audit_refusal(
    store: Store,
    interrupt_id: str,
    value: Any,
    resolved_by: str | None,
    channel: Channel,
    who: auth.Principal,
    outcome: str,
    comment: str | None,
) -> None:
    item = audit.entry(
        actor=resolved_by or who.actor,
        key_id=who.key_id,
        channel=channel,
        outcome=outcome,
        payload_digest=audit.payload_sha256(value),
        person=person(who),
        comment=comment,
    )
    await store.append_audit(interrupt_id, item)


def outcome(
    interrupt_id: str, res: list[Any], payload_digest: str, response: dict[str, Any]
) -> dict[str, Any]:
    outcome = res[0]
    if outcome == "ok":
        return response
    if outcome == "idempotent":
        stored = loads(res[1])
        if stored["digest"] != payload_digest:
            raise errors.IdempotencyKeyReused(
                "this Idempotency-Key was already used with a different answer; "
                "use a new key for a new answer"
            )
        body: dict[str, Any] = stored["body"]
        return body
    if outcome == "not_found":
        raise errors.InterruptNotFound(f"no interrupt with id {interrupt_id!r}")
    if outcome == "not_assignee":
        raise errors.NotAssignee(NOT_ASSIGNEE)
    if outcome == "fingerprint_mismatch":
        raise mismatch(str(res[1]))
    if outcome == "used":
        raise errors.LinkUsed("this link was already used; each link answers once")
    if outcome == "expired":
        raise errors.InterruptExpired(f"interrupt {interrupt_id} expired; it takes no answers")
    status, winner = res[1], loads(res[2])
    if status in ("resolved", "accepted"):
        raise errors.AlreadyResolved(
            f"interrupt {interrupt_id} was already answered", resolution=winner
        )
    if status == "expired":
        raise errors.InterruptExpired(
            f"interrupt {interrupt_id} expired; it takes no answers", resolution=winner
        )
    raise errors.InterruptClosed(
        f"interrupt {interrupt_id} is {status}; its run no longer waits for it",
        status=status,
    )
