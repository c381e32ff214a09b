"""Taking back an answer in its undo window: ``POST /interrupts/{id}/withdraw``
(broker/core/undo.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from broker.api.deps import Principal, QueueDep, StoreDep
from broker.api.openapi import REDIS, SCOPE, error_responses
from broker.core import errors, undo

router = APIRouter(
    prefix="/interrupts", tags=["interrupts"], responses=error_responses(*SCOPE, REDIS)
)


@router.post(
    "/{interrupt_id}/withdraw",
    response_model=dict[str, Any],
    responses=error_responses(
        errors.InterruptNotFound,
        errors.NotAuthor,
        errors.NotHeld,
        errors.UndoWindowClosed,
    ),
)
async def withdraw_answer(
    interrupt_id: str, store: StoreDep, queue: QueueDep, principal: Principal
) -> dict[str, Any]:
    """Takes back an answer held in its undo window (the interrupt is ``accepted``): the
    interrupt is pending again and its run does not resume. Only its author withdraws
    it (the same person or API key; a key with the ``interrupts:on_behalf`` scope
    withdraws any), and only before the window closes (``undo.held_until``); then the
    run resumes with the answer and this is 409 ``undo_window_closed``."""
    return await undo.withdraw(store, queue, interrupt_id, principal)
