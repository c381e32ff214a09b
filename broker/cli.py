"""The ``broker`` command: ``api`` and ``worker`` for production, ``dev`` for local use
(supervised by broker/dev.py)."""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from broker import dev
from broker.core import config, logs
from broker.core.settings import Settings, get_settings

LOG_LEVELS = ("debug", "info", "warning", "error")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``broker``; deployment tests validate commands with it."""
    parser = argparse.ArgumentParser(
        prog="broker", description="Interrupt broker: durable, shared LangGraph interrupts."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    api = commands.add_parser("api", help="serve the HTTP API (needs REDIS_URL)")
    api.add_argument("--host", help="bind address (default: BROKER_HOST or 127.0.0.1)")
    api.add_argument("--port", type=int, help="port (default: BROKER_PORT or 8000)")
    api.add_argument("--workers", type=int, default=1, help="uvicorn processes (default: 1)")
    worker = commands.add_parser(
        "worker", help="run a worker that executes agent runs (needs REDIS_URL)"
    )
    for command in (api, worker):
        command.add_argument("--log-level", choices=LOG_LEVELS, default="info")

    dev = commands.add_parser(
        "dev",
        help="run the API and a worker locally, with an embedded Redis unless REDIS_URL is set",
    )
    dev.add_argument("--host", default="127.0.0.1", help="API bind address (default: 127.0.0.1)")
    dev.add_argument("--port", type=int, default=8000, help="API port (default: 8000)")
    dev.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".broker-data"),
        help="where the embedded Redis keeps its append-only file (default: ./.broker-data)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``broker`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "dev":
        return dev.run(args)
    try:
        settings = get_settings()
        config.check(settings, args.command)
    except (RuntimeError, ValueError) as exc:
        print(f"broker {args.command}: {exc}", file=sys.stderr)
        return 2
    if args.command == "api":
        return _api(args, settings)
    return _worker(args, settings)


def _api(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    dev.stop_with_parent()
    uvicorn.run(
        "broker.api.app:create_app",
        factory=True,
        **uvicorn_options(
            settings,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_level=args.log_level,
        ),
    )
    return 0


def uvicorn_options(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int = 1,
    log_level: str = "info",
) -> dict[str, Any]:
    """How ``broker api`` runs uvicorn (bench/api_overhead.py serves its baseline app
    with the same options)."""
    import uvicorn

    return {
        "host": host if host is not None else settings.host,
        "port": port if port is not None else settings.port,
        "workers": workers,
        # uvicorn's fastest event loop and HTTP parser (its "auto" picks them too when
        # installed; named here so a missing one is an error, not a slower server)
        "loop": "uvloop" if sys.platform != "win32" else "auto",
        "http": "httptools",
        # in-flight requests get the drain grace; live streams end at once with a
        # reconnect hint (broker/api/drain.py), so none holds a stopping API open
        "timeout_graceful_shutdown": settings.drain_grace_s,
        # A dict, not a call made here, so every uvicorn worker process applies it too.
        "log_config": _log_config(log_level, uvicorn.config.LOGGING_CONFIG, settings.log_format),
        "log_level": log_level,
    }


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio
    import logging.config

    from worker import metrics
    from worker.main import run_worker

    logging.config.dictConfig(_log_config(args.log_level, fmt=settings.log_format))
    try:
        metrics.serve(settings)  # a taken port stops the start, as bad configuration does
    except RuntimeError as exc:
        print(f"broker worker: {exc}", file=sys.stderr)
        return 2
    dev.stop_with_parent()
    try:
        try:
            import uvloop
        except ImportError:  # uvloop does not build on Windows
            asyncio.run(run_worker(settings))
        else:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(run_worker(settings))
    except asyncio.CancelledError:
        # arq stops on SIGINT/SIGTERM by cancelling its main task; arq's own runner
        # swallows this error the same way.
        pass
    except KeyboardInterrupt:
        return 130
    return 0


def _log_config(
    level: str, base: dict[str, Any] | None = None, fmt: str = "text"
) -> dict[str, Any]:
    # The project's loggers and arq's, which print nothing unless configured, as arq's
    # own command line configures them.
    config: dict[str, Any] = (
        copy.deepcopy(base) if base else {"version": 1, "disable_existing_loggers": False}
    )
    formatters = config.setdefault("formatters", {})
    formatters["broker"] = {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    if fmt == "json":
        # every line one JSON object, uvicorn's (default, access) included, with the ids
        # of what it is about (broker/core/logs.py)
        for name in ("broker", *formatters):
            formatters[name] = logs.json_formatter()
    config.setdefault("handlers", {})["broker"] = {
        "class": "logging.StreamHandler",
        "formatter": "broker",
        "stream": "ext://sys.stderr",
    }
    # credentials that ride in URLs (?api_key=, action link tokens) stay out of the logs
    filters = config.setdefault("filters", {})
    filters["redact"] = {"()": "broker.api.gate.RedactCredentials"}
    if fmt == "json":
        filters["context"] = {"()": "broker.core.logs.ContextFilter"}
        # what libraries log through the root logger is a JSON line too
        config["root"] = {"handlers": ["broker"], "level": "WARNING"}
    for handler in config["handlers"].values():
        handler["filters"] = [*handler.get("filters", []), *filters]
    loggers = config.setdefault("loggers", {})
    for name in ("broker", "worker", "agent", "arq"):
        loggers[name] = {"handlers": ["broker"], "level": level.upper(), "propagate": False}
    if level.lower() == "info":
        # arq logs two lines per job at INFO (its start and its end): at load, writing
        # them costs more than the job's own bookkeeping; --log-level debug shows them
        loggers["arq.worker"] = {**loggers["arq"], "level": "WARNING"}
    return config


if __name__ == "__main__":
    sys.exit(main())
