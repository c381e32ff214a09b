"""Process CPU from /proc, and py-spy profiles of the API and the worker.

``cpu_s(pid)`` is utime + stime of the process itself (its children excluded), in seconds.
A profile is ``py-spy record --format raw`` (collapsed stacks: ``frame;frame;… count``);
``top_frames`` ranks functions by own time (the stack's last frame) and by total time
(every function on the stack, once per sample). py-spy samples waiting threads here too,
so samples whose last frame is a wait (``IDLE``: a thread pool's idle workers, the event
loop in epoll, uvloop's C loop under ``Runner.run``) are counted apart and left out; so
are, in total time, the frames every sample has (``ENTRY``: the process's main, the
event loop's run).
"""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
_LINE = re.compile(r"^(.*) (\d+)$")
_FRAME = re.compile(r"^(.*) \((.*?)(?::\d+)?\)$")
IDLE = frozenset(
    {
        "Condition.wait (threading.py)",
        "_worker (concurrent/futures/thread.py)",
        "EpollSelector.select (selectors.py)",
        "Runner.run (asyncio/runners.py)",
    }
)
ENTRY_FILES = (
    *("<frozen runpy>", "broker/cli.py", "asyncio/runners.py", "uvicorn/main.py"),
    *("uvicorn/_compat.py", "uvicorn/server.py"),
)
ENTRY = (
    *("BaseEventLoop.run_forever", "BaseEventLoop.run_until_complete"),
    *("BaseEventLoop._run_once", "Handle._run"),
)


def _entry(frame: str) -> bool:
    return frame.startswith(ENTRY) or frame.endswith(tuple(f"({f})" for f in ENTRY_FILES))


def cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` (children not included), seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # fields 14 and 15 of stat(5)


def cpu_all(pids: dict[str, int]) -> dict[str, float]:
    return {name: cpu_s(pid) for name, pid in pids.items()}


class Profiles:
    """py-spy recording each named process until ``stop``."""

    def __init__(self, outdir: Path, pids: dict[str, int], rate: int = 200) -> None:
        outdir.mkdir(parents=True, exist_ok=True)
        self.files = {name: outdir / f"{name}.txt" for name in pids}
        self.procs = [
            subprocess.Popen(
                [
                    *("py-spy", "record", "--pid", str(pid), "--format", "raw"),
                    *("-o", str(self.files[name]), "--duration", "600", "--rate", str(rate)),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for name, pid in pids.items()
        ]

    def stop(self) -> None:
        """Ends the recordings (py-spy writes its file on SIGINT)."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def _short(frame: str) -> str:
    """``func (file:line)`` → ``func (short/file)``: lines merged, paths cut to the package."""
    m = _FRAME.match(frame)
    if not m:
        return frame
    func, path = m.groups()
    for cut in ("site-packages/", "/lib/python3.11/"):
        if cut in path:
            path = path.split(cut, 1)[1]
            break
    else:
        path = path.rsplit("/compare/", 1)[-1]
    return f"{func} ({path})"


Ranked = list[tuple[str, int]]


def top_frames(raw: Path, k: int = 15) -> tuple[int, int, Ranked, Ranked]:
    """Busy and idle samples, and the ``k`` functions with the most own and most total
    busy samples."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = idle = 0
    for line in raw.read_text().splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        stack, n = m.group(1).split(";"), int(m.group(2))
        frames = [_short(f) for f in stack]
        if frames[-1] in IDLE:
            idle += n
            continue
        samples += n
        own[frames[-1]] += n
        for f in set(frames):
            if not _entry(f):
                total[f] += n
    return samples, idle, own.most_common(k), total.most_common(k)


def print_profile(name: str, raw: Path, k: int = 15) -> None:
    if not raw.exists():
        print(f"\n{name}: no profile written ({raw})")
        return
    samples, idle, own, total = top_frames(raw, k)
    print(f"\n{name}: {samples} busy samples, {idle} waiting left out ({raw})")
    for title, ranked in (("own time", own), ("total time", total)):
        print(f"  top {k} by {title}:")
        for frame, n in ranked:
            print(f"    {100 * n / max(samples, 1):5.1f}%  {frame[:110]}")
