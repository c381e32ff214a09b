"""What the LangGraph API refuses that the Agent Server would take, with the broker's
error shape (``{"error": {"code", "message"}}``): the SDK raises it as the status's
error class (409 ``ConflictError``, 422 ``UnprocessableEntityError``, …) with the
message."""

from __future__ import annotations

from broker.core.errors import BrokerError


class NoPendingInterrupt(BrokerError):
    """A resume on a thread with nothing waiting for an answer."""

    status_code = 409
    code = "no_pending_interrupt"


class UnknownInterrupt(BrokerError):
    """A resume map naming an interrupt that is not pending on the thread."""

    status_code = 409
    code = "unknown_interrupt"


class AmbiguousResume(BrokerError):
    """One resume value while several interrupts are pending."""

    status_code = 422
    code = "ambiguous_resume"


class Unsupported(BrokerError):
    """An Agent Server option the broker does not serve (it would be ignored otherwise)."""

    status_code = 422
    code = "unsupported"


class ThreadExists(BrokerError):
    status_code = 409
    code = "thread_exists"
