"""Reading a thread's graph state from the API process, for AG-UI snapshots."""

from __future__ import annotations

from typing import Any

from langgraph.types import StateSnapshot


class ThreadStates:
    """The registered graphs, each with the broker's checkpoint saver attached."""

    def __init__(self, graphs: dict[str, Any], saver: Any) -> None:
        self.saver = saver
        self.graphs = {aid: g.copy(update={"checkpointer": saver}) for aid, g in graphs.items()}

    async def snapshot(self, agent_id: str, thread_id: str) -> StateSnapshot | None:
        graph = self.graphs.get(agent_id)
        if graph is None:
            return None
        snap: StateSnapshot = await graph.aget_state({"configurable": {"thread_id": thread_id}})
        return snap

    def has_channel(self, agent_id: str, name: str) -> bool:
        graph = self.graphs.get(agent_id)
        return graph is not None and name in graph.channels
