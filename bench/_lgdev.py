"""The peer: ``langgraph dev`` (langgraph-cli's in-memory server) serving bench/approval.py.

It runs from a venv of its own, cached under ~/.cache/broker-bench/lgdev and reused while
it imports; ``pip install "langgraph-cli[inmem]"`` builds it the first time. Telemetry
and the update check are off: ``LANGGRAPH_CLI_NO_ANALYTICS=1`` (langgraph_cli/analytics.py),
``LANGGRAPH_NO_VERSION_CHECK=true`` (langgraph_api/cli.py: no PyPI request at start),
``LANGSMITH_TRACING=false`` and ``LANGCHAIN_TRACING_V2=false`` with no LangSmith key in
its environment (so langgraph_api/metadata.py skips its metadata loop, as it logs).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench._cycles import INPUT, Cycle, sse
from tests.harness import ROOT, free_port

VENV = Path.home() / ".cache" / "broker-bench" / "lgdev"
PACKAGE = "langgraph-cli[inmem]"
QUIET = {
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
}
DROPPED = (
    *("LANGSMITH_API_KEY", "LANGCHAIN_API_KEY", "LANGGRAPH_CLOUD_LICENSE_KEY"),
    *("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"),
)


def _versions(venv: Path) -> str | None:
    code = (
        "import importlib.metadata as m; print(', '.join(f'{p} ' + m.version(p) for p in "
        "('langgraph-cli', 'langgraph-api', 'langgraph-runtime-inmem', 'langgraph')))"
    )
    python = venv / "bin" / "python"
    if not (venv / "bin" / "langgraph").exists() or not python.exists():
        return None
    got = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    return got.stdout.strip() if got.returncode == 0 else None


def ensure_venv(venv: Path = VENV) -> tuple[Path | None, str]:
    """The venv (built when missing), and its package versions or why there is none."""
    versions = _versions(venv)
    if versions:
        return venv, versions
    print(f"  building {venv}: pip install {PACKAGE!r} …", flush=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", PACKAGE],
    ]
    for argv in steps:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            return None, f"{' '.join(argv[-3:])} failed: {' | '.join(tail)}"
    versions = _versions(venv)
    return (venv, versions) if versions else (None, "installed, but langgraph_cli is missing")


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path


@contextlib.contextmanager
def serving(venv: Path, jobs: int) -> Iterator[Server]:
    """``langgraph dev`` on a free loopback port, graph ``approval`` = bench/approval.py."""
    home = Path(tempfile.mkdtemp(prefix="lgdev-"))
    graph = ROOT / "bench" / "approval.py"
    config = {"dependencies": ["."], "graphs": {"approval": f"{graph}:graph"}}
    (home / "langgraph.json").write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if k not in DROPPED}
    env.update(QUIET)
    port = free_port()
    argv = [str(venv / "bin" / "langgraph"), "dev", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--no-browser", "--no-reload", "--n-jobs-per-worker", str(jobs)]
    log = home / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv, cwd=home, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    try:
        _wait_ok(server)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _wait_ok(server: Server, deadline_s: float = 90) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if server.proc.poll() is not None:
            raise RuntimeError(f"langgraph dev exited: {server.log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/ok", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"langgraph dev did not answer /ok: {server.log.read_text()[-2000:]}")


def lgdev_cycle(client: httpx.AsyncClient, base: str) -> Cycle:
    """POST /threads; POST /threads/{tid}/runs/stream with the input, read to the end (an
    ``__interrupt__`` in its values); the same with ``{"command": {"resume": true}}``."""

    async def stream(tid: str, body: dict[str, object]) -> dict[str, object]:
        values: dict[str, object] = {}
        url = f"{base}/threads/{tid}/runs/stream"
        async with client.stream("POST", url, json={"assistant_id": "approval", **body}) as s:
            s.raise_for_status()
            async for event, data in sse(s):
                if event == "error":
                    raise RuntimeError(f"langgraph dev: {data}")
                if event == "values":
                    values = data
        return values

    async def one() -> float:
        thread = (await client.post(f"{base}/threads", json={})).raise_for_status().json()
        tid = thread["thread_id"]
        asked = await stream(tid, {"input": INPUT})
        assert "__interrupt__" in asked, asked
        t0 = time.perf_counter()
        done = await stream(tid, {"command": {"resume": True}})
        leg = time.perf_counter() - t0
        assert done.get("answer") is True, done
        return leg

    return one
