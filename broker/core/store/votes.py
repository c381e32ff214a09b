"""The vote transition (broker/core/store/_lua_votes.py): one person's vote on an
interrupt decided by several, and the decision when it meets the rule."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker.core.codec import dumps


class Votes:
    if TYPE_CHECKING:  # provided by Transitions

        async def _call(self, name: str, args: list[Any], keys: list[str] | None = None) -> Any: ...

    async def vote_script(
        self,
        interrupt_id: str,
        *,
        vote: dict[str, Any],
        voter: str,
        names: list[str] | None,
        seen: int,
        resolution: dict[str, Any] | None,
        voted_event: dict[str, Any],
        resolved_event: dict[str, Any],
        vote_entry: dict[str, Any],
        decision_entry: dict[str, Any],
        fingerprint: str | None = None,
        job: tuple[list[str], list[Any]] | None = None,
    ) -> list[Any]:
        """The raw vote transition; broker/core/votes.py interprets its outcome.

        ``voter`` the voter's subject ("" for a principal answering on a person's
        behalf, whose answer decides; then ``names`` is None); ``seen`` how many votes
        the vote and ``resolution`` (set when it decides) were made for; ``job`` the
        run's job, queued in the same step when the vote decides (as resolve takes it).
        """
        res: list[Any] = await self._call(
            "vote",
            [
                interrupt_id,
                dumps(vote),
                voter,
                "" if names is None else dumps(names),
                seen,
                "1" if resolution is not None else "",
                dumps(resolution) if resolution is not None else "",
                dumps(voted_event),
                dumps(resolved_event),
                dumps(vote_entry),
                dumps(decision_entry),
                fingerprint or "",
                *(job[1] if job else []),
            ],
            keys=list(job[0]) if job else [],
        )
        return res
