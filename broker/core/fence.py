"""The fence an attempt carries on its writes: the thread's fence key and its lease token.

The worker that takes a thread's lease writes its token to the thread's fence key (see
worker/locks.py). Every write an attempt makes (begin attempt, record interrupts,
record finish, a checkpoint or a task's writes) carries its ``Fence``, and the script
that writes checks, in the same atomic step, that the fence still holds this token: once
another holder has taken the thread, the former holder can write nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass

# Where the runner puts the fence in a graph's config, for the checkpoint saver. LangGraph
# copies configurable keys into checkpoint metadata, except those starting with "__".
CONFIG_KEY = "__broker_fence"


@dataclass(frozen=True)
class Fence:
    key: str
    token: str


class Fenced(Exception):
    """A write was refused: another holder has taken the thread since this one."""
