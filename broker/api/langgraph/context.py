"""The LangGraph routes' dependency: what following runs and reading threads needs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from broker.api.langgraph.follow import Ctx


async def get_ctx(request: Request) -> Ctx:
    s = request.app.state
    return Ctx(store=s.store, hub=s.hub, queue=s.queue, threads=s.threads, settings=s.settings)


CtxDep = Annotated[Ctx, Depends(get_ctx)]
