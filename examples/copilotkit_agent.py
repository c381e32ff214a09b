"""A scheduling agent written with CopilotKit's Python SDK, served by the broker unchanged.

Install the extra (``uv sync --extra copilotkit``) and register it:

    BROKER_AGENTS="copilot=examples.copilotkit_agent:graph" uv run broker dev

A CopilotKit frontend pointed at ``/agui/copilot`` receives the slot question through
``useInterrupt``, and the same interrupt is listed at ``GET /interrupts``.
"""

from __future__ import annotations

from copilotkit import CopilotKitMiddleware, CopilotKitState
from langchain.agents import create_agent

from agent.models import get_chat_model
from agent.scheduling import SYSTEM_PROMPT, schedule_meeting

graph = create_agent(
    model=get_chat_model(),
    tools=[schedule_meeting],
    middleware=[CopilotKitMiddleware()],
    state_schema=CopilotKitState,
    system_prompt=SYSTEM_PROMPT,
)
