"""The withdraw transition (broker/core/store/_lua_undo.py): an answer held in its undo
window taken back, the interrupt pending again and its run's queued resume gone."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from broker.core.codec import dumps


class Undo:
    if TYPE_CHECKING:  # provided by Transitions

        async def _call(self, name: str, args: list[Any], keys: list[str] | None = None) -> Any: ...

    async def withdraw_script(
        self,
        interrupt_id: str,
        *,
        author: str,
        anyone: bool,
        audit_entry: dict[str, Any],
        event: dict[str, Any],
        deadline_ms: int | None,
        job: tuple[list[str], str],
    ) -> list[Any]:
        """The raw withdraw transition; broker/core/undo.py interprets its outcome.

        ``author`` is who withdraws (``undo.author``), ``anyone`` whether they may take
        back anyone's answer; ``deadline_ms`` the interrupt's deadline to restore (its
        ladder's next step or its expiry); ``job`` the keys (job, result, queue) and id
        of the resume its answer queued.
        """
        keys, job_id = job
        res: list[Any] = await self._call(
            "withdraw",
            [
                interrupt_id,
                author,
                "1" if anyone else "",
                dumps(audit_entry),
                dumps(event),
                deadline_ms or "",
                job_id,
            ],
            keys=keys,
        )
        return res
