"""Naming: asks for approval, then for a name, and answers as the assistant so named."""

from __future__ import annotations

from typing import Annotated, Any, NotRequired

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, SystemMessage
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import interrupt
from typing_extensions import TypedDict

from agent._answers import answer_text, is_approval
from agent.models import get_chat_model

APPROVAL = {"type": "approval", "content": "please approve"}
ASK_NAME = {"type": "ask", "content": "Before we start, what would you like to call me?"}
NOT_APPROVED = "The request was not approved, so I stopped here."


class NamingState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    agent_name: NotRequired[str | None]


def build_graph(model: BaseChatModel | None = None) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The naming graph, answering with ``model`` (default: ``get_chat_model()``)."""
    chat = model if model is not None else get_chat_model()

    def respond(state: NamingState) -> dict[str, Any]:
        # Both interrupts live in this one node: on resume LangGraph replays the node and
        # hands each `interrupt()` its answer in call order.
        if not is_approval(interrupt(APPROVAL)):
            return {"messages": [AIMessage(content=NOT_APPROVED)]}
        name = state.get("agent_name")
        while not name:
            # A blank answer asks again, as a new interrupt.
            name = answer_text(interrupt(ASK_NAME))
        system = SystemMessage(content=f"You are a helpful assistant named {name}.")
        reply = chat.invoke([system, *state["messages"]])
        return {"messages": [reply], "agent_name": name}

    builder = StateGraph(NamingState).add_node(respond).add_edge(START, "respond")
    return builder.compile(name="naming")


graph = build_graph()
