"""Tool approval: LangChain's human-in-the-loop middleware gates the send_email tool."""

from __future__ import annotations

from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.language_models import BaseChatModel
from langchain_core.tools import tool
from langgraph.graph.state import CompiledStateGraph

from agent.models import get_chat_model

SYSTEM_PROMPT = (
    "You send emails for the user with send_email. A person reviews each email before it "
    "goes out. Report the tool's result to the user."
)


@tool
def send_email(to: str, subject: str, body: str) -> str:
    """Send an email to a recipient with a subject and body."""
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
