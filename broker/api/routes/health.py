from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from broker.api.deps import StoreDep
from broker.core.codec import now_ms

router = APIRouter(tags=["health"])


_OK = b'{"status":"ok"}'


@router.get("/healthz", response_model=dict[str, str])
async def healthz() -> Response:
    """Liveness: the process answers."""
    return Response(_OK, media_type="application/json")


@router.get(
    "/readyz",
    responses={
        503: {
            "description": "Not ready: Redis does not answer, or no worker is alive",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def readyz(store: StoreDep) -> Any:
    """Readiness: Redis answers and at least one worker has a recent heartbeat."""
    checks: dict[str, Any] = {}
    try:
        await store.r.ping()
        checks["redis"] = "ok"
        since = now_ms() - int(store.settings.worker_heartbeat_s * 3000)
        workers = await store.r.zcount(store.keys.workers, since, "+inf")
        checks["workers"] = workers
    except Exception as exc:
        checks["redis"] = f"unreachable: {type(exc).__name__}"
        checks["workers"] = None
    ready = checks["redis"] == "ok" and bool(checks["workers"])
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )
