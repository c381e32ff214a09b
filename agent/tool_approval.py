"""Tool approval: LangChain's human-in-the-loop middleware gates the send_email tool.

The tool itself checks the approval too: it runs only with a valid signed decision
receipt (agent/receipts.py) for exactly its arguments, on its thread. When the broker
signs no receipts, it refuses as well, unless ``TOOL_APPROVAL_RECEIPTS=warn`` lets it run
with a warning (for a deployment that has not configured receipt keys yet).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.graph.state import CompiledStateGraph

from agent import receipts
from agent.models import get_chat_model

log = logging.getLogger("agent.tool_approval")

SYSTEM_PROMPT = (
    "You send emails for the user with send_email. A person reviews each email before it "
    "goes out. Report the tool's result to the user."
)


def approval(config: RunnableConfig | None, name: str, args: dict[str, Any]) -> str | None:
    """Why the call ``name(args)`` may not run, or None when a receipt approves it."""
    try:
        receipts.receipt_for(config, name, args)
    except receipts.ReceiptsOff as exc:
        if os.environ.get("TOOL_APPROVAL_RECEIPTS", "require") != "warn":
            return str(exc)
        log.warning("%s runs without a receipt: %s (TOOL_APPROVAL_RECEIPTS=warn)", name, exc)
    except receipts.ReceiptRefused as exc:
        return str(exc)
    return None


@tool
def send_email(to: str, subject: str, body: str, config: RunnableConfig) -> str:
    """Send an email to a recipient with a subject and body."""
    refused = approval(config, "send_email", {"to": to, "subject": subject, "body": body})
    if refused:
        return f"Email not sent: {refused}"
    # A stand-in: the point is the review before it, not the delivery.
    return f"Email sent to {to} with subject '{subject}'"


def build_graph(model: BaseChatModel | None = None) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The tool approval agent, driven by ``model`` (default: ``get_chat_model()``)."""
    review = HumanInTheLoopMiddleware(
        interrupt_on={"send_email": {"allowed_decisions": ["approve", "edit", "reject"]}},
        description_prefix="Sending an email needs approval",
    )
    return create_agent(
        model if model is not None else get_chat_model(),
        tools=[send_email],
        system_prompt=SYSTEM_PROMPT,
        middleware=[review],
        name="tool_approval",
    )


graph = build_graph()
