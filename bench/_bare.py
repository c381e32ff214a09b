"""A bare Starlette app with the broker's /healthz route, served as ``broker api`` serves
the broker (broker/cli.py): the same uvicorn call, loop and HTTP implementation (uvicorn's
defaults), graceful-shutdown timeout and logging, access log included.

    python -m bench._bare PORT
"""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from broker.cli import _log_config
from broker.core.settings import Settings


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/healthz", healthz)])


def main() -> None:
    uvicorn.run(
        "bench._bare:app",
        host="127.0.0.1",
        port=int(sys.argv[1]),
        workers=1,
        timeout_graceful_shutdown=Settings().drain_grace_s,
        log_config=_log_config("info", uvicorn.config.LOGGING_CONFIG),
        log_level="info",
    )


if __name__ == "__main__":
    main()
