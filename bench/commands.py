"""Redis commands per approval cycle, split by process (api, worker, other), top commands.

Starts a throwaway redis-server (``--save "" --appendonly no``, free loopback port), the
API (``broker.cli api``) and one worker (``broker.cli worker``) as subprocesses, and counts
every command with MONITOR on a connection of its own. Nothing is imported from the broker.

Attribution: MONITOR names each command's client address. Its port is looked up in
/proc/net/tcp (socket inode), the inode in /proc/<pid>/fd of the API, the worker and their
children, whenever an address is first seen, so lazily opened pool connections count too;
an address no process holds any more is ``other``. Commands a Lua script runs (``[0 lua]``
lines, which follow their EVAL/EVALSHA) count for its caller, under "in scripts"; every
other figure is commands sent.

A cycle (after one unmeasured warm-up of each kind): POST /runs, GET /runs/{id} every 50 ms
until the run waits, POST /interrupts/{id}/resolve, polls until it waits again or has
succeeded, 0.1 s for the worker to finish. "one approval" is ``naming`` started with
``agent_name`` set, so it only asks for approval (``true``); "naming" asks for approval,
then a name (``true``, ``"Ada"``). This script's own connection writes an ECHO marker (not
counted) around every request. Subtracted: in each polling GET's window, the API's
commands of the kinds a GET issues when all is idle; and the background (heartbeats, arq
polling, reconciler, expiry pass), counted after the cycles over an idle window as long as
they took (at least --min-idle s), as a rate per process and command. Per resolve: API
commands between the markers around one POST .../resolve. Per resume: worker commands
from that POST until the run is seen at its next state, plus 0.1 s. ``--history N``
answers one ``bench.graphs:loop`` run N times (tests/graphs.py has no looping graph),
then compares its answers N+1..N+3 with its answers 1..3.

    uv run python -m bench.commands [--cycles 20] [--history 500]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
PROCS = ("api", "worker", "other")
LINE = re.compile(r'\+[\d.]+ \[\d+ ([^\]]+)\] "([^"]*)"(?: "([^"]*)")?')
SUBCOMMANDS = {"SCRIPT", "CLIENT", "CONFIG", "XINFO", "OBJECT", "FUNCTION", "MEMORY"}
SETTLE_S = 0.1
Key = tuple[str, str, bool]  # (process, command, ran inside a script)
Mark = tuple[int, float]  # where a marker fell in the monitor log, and when
Span = tuple[Mark, Mark]
Counts = dict[Key, float]


def sockets(redis_port: int, roots: dict[int, str]) -> dict[str, str]:
    """Client address of each connection to Redis → the root process it belongs to."""
    parent, inodes, found = {}, {}, {}
    for d in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError, IndexError):
            parent[int(d)] = int(Path(f"/proc/{d}/stat").read_text().rsplit(")")[-1].split()[1])
    for pid in parent:
        root = pid
        while root > 1 and root not in roots:
            root = parent.get(root, 0)
        with contextlib.suppress(OSError):
            for fd in os.scandir(f"/proc/{pid}/fd") if root in roots else ():
                with contextlib.suppress(OSError):  # the fd may be gone by now
                    if (link := os.readlink(fd.path)).startswith("socket:["):
                        inodes[link[8:-1]] = roots[root]
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            local, remote, inode = (f := row.split())[1], f[2], f[9]
            if int(remote.rsplit(":")[1], 16) == redis_port and inode in inodes:
                found[f"127.0.0.1:{int(local.rsplit(':')[1], 16)}"] = inodes[inode]
    return found


class Monitor(threading.Thread):
    """Reads MONITOR lines into ``log``; ECHO markers from this process go to ``marks``."""

    def __init__(self, port: int, roots: dict[int, str]) -> None:
        super().__init__(daemon=True)
        self.port, self.roots, self.owners = port, roots, dict[str, str]()
        self.log, self.marks, self.cond = list[Key](), dict[str, int](), threading.Condition()
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(b"MONITOR\r\n")

    def run(self) -> None:
        caller = "other"
        for raw in self.sock.makefile("rb"):
            if not (m := LINE.match(raw.decode(errors="replace"))):
                continue
            addr, cmd, arg = m.groups()
            if addr != "lua":
                if addr not in self.owners:
                    self.owners.update(sockets(self.port, self.roots))
                caller = self.owners.setdefault(addr, "other")
            if caller == "bench":
                with self.cond:
                    self.marks[arg] = len(self.log)
                    self.cond.notify_all()
            else:
                sub = f" {arg.upper()}" if cmd.upper() in SUBCOMMANDS and arg else ""
                self.log.append((caller, cmd.upper() + sub, addr == "lua"))


class Session:
    def __init__(self, redis_port: int, monitor: Monitor, http: httpx.Client) -> None:
        self.r, self.mon, self.http = redis.Redis(port=redis_port), monitor, http
        self.polls: list[Span] = []
        self.get_cmds: set[str] = set()

    def mark(self) -> Mark:
        token = f"bench-mark-{len(self.mon.marks)}"
        self.r.echo(token)
        with self.mon.cond:
            self.mon.cond.wait_for(lambda: token in self.mon.marks, timeout=10)
        return self.mon.marks[token], time.monotonic()

    def req(self, method: str, path: str, body: Any = None) -> tuple[Any, Span]:
        a = self.mark()
        resp = self.http.request(method, path, json=body)
        span = (a, self.mark())
        resp.raise_for_status()
        return resp.json(), span

    def wait(self, run_id: str, after: str | None = None, final: bool = False) -> dict[str, Any]:
        """Polls the run until it has succeeded (``final``) or waits on another interrupt."""
        while True:
            run, span = self.req("GET", f"/runs/{run_id}")
            self.polls.append(span)
            if run["status"] in ("failed", "cancelled"):
                raise RuntimeError(f"run {run_id} {run['status']}: {run.get('error')}")
            if final and run["status"] == "succeeded":
                return run
            if not final and run["pending_interrupts"][:1] not in ([], [after]):
                return run
            time.sleep(0.05)

    def tally(self, spans: list[Span], bg: Counts | None = None, n: float = 1) -> Counts:
        """Commands in ``spans``, less ``bg`` (per second) over their length, per ``n``."""
        out: Counts = collections.defaultdict(float)
        for (a, _), (b, _) in spans:
            for k in self.mon.log[a:b]:
                out[k] += 1
        for k, rate in (bg or {}).items():
            out[k] -= rate * seconds_in(spans)
        return {k: v / n for k, v in out.items()}

    def get_cost(self, spans: list[Span]) -> Counts:
        counts = self.tally(spans).items()
        return {k: v for k, v in counts if k[0] == "api" and k[1] in self.get_cmds}


def seconds_in(spans: list[Span]) -> float:
    return sum(b[1] - a[1] for a, b in spans)


def total(counts: Counts, proc: str | None = None, lua: bool = False) -> float:
    return sum(v for (p, _, x), v in counts.items() if proc in (None, p) and x == lua)


def top(counts: Counts, k: int, scripts: bool = True) -> collections.Counter[str]:
    out: collections.Counter[str] = collections.Counter()
    for (_, cmd, lua), v in counts.items():
        if scripts or not lua:
            out[f"{cmd} (in script)" if lua else cmd] += v
    return collections.Counter(dict(out.most_common(k)))


def cycle(s: Session, body: dict[str, Any], answers: list[Any]) -> dict[str, list[Span]]:
    first_poll, start = len(s.polls), s.mark()
    run_id = s.req("POST", "/runs", body)[0]["run_id"]
    state, got = s.wait(run_id), {"resolve": list[Span](), "resume": list[Span]()}
    for n, value in enumerate(answers):
        iid = state["pending_interrupts"][0]
        resolve = s.req("POST", f"/interrupts/{iid}/resolve", {"value": value})[1]
        state = s.wait(run_id, iid, final=n == len(answers) - 1)
        time.sleep(SETTLE_S)
        got["resolve"].append(resolve)
        got["resume"].append((resolve[0], s.mark()))
    if not s.get_cmds:  # what a GET issues, from a few GETs while all is idle
        spans = [s.req("GET", f"/runs/{run_id}")[1] for _ in range(5)]
        s.get_cmds = set.intersection(
            *({k[1] for k in s.tally([x]) if k[0] == "api"} for x in spans)
        )
    return got | {"cycle": [(start, got["resume"][-1][1])], "polls": s.polls[first_poll:]}


def measure(s: Session, state: dict, answers: list[Any], args: argparse.Namespace) -> tuple:
    """``args.cycles`` naming runs from ``state``, then the idle window; spans and background."""
    body = {"agent_id": "naming", "input": state}
    cycle(s, body, answers)  # warm-up: first connections, script loads
    got: dict[str, list[Span]] = collections.defaultdict(list)
    for _ in range(args.cycles):
        for part, spans in cycle(s, body, answers).items():
            got[part] += spans
    idle, a = max(args.min_idle, seconds_in(got["cycle"])), s.mark()
    time.sleep(idle)
    span = (a, s.mark())
    return got, s.tally([span], n=seconds_in([span])), idle


def report(s: Session, modes: dict[str, tuple], n: int) -> None:
    nets = {name: s.tally(got["cycle"], bg, n) for name, (got, bg, _) in modes.items()}
    for name, (got, _, _) in modes.items():
        for k, v in s.get_cost(got["polls"]).items():
            nets[name][k] -= v / n
    print(f"\nRedis commands per cycle, mean of {n}; polling GETs and background subtracted")
    print(f"{'process':<8}" + "".join(f"{name:>16} {'in scripts':>11}" for name in modes))
    for p in (*PROCS, None):
        cells = [f"{total(net, p):>16.1f} {total(net, p, True):>11.1f}" for net in nets.values()]
        print(f"{p or 'total':<8}" + "".join(cells))
    for name, (got, bg, idle) in modes.items():
        rates = ", ".join(f"{p} {total(bg, p):.1f}/s" for p in PROCS)
        ms = seconds_in(got["cycle"]) / n * 1000
        print(f"\n{name}: {ms:.0f} ms per cycle; background over {idle:.1f} s idle: {rates}")
        per_get = sum(s.get_cost(got["polls"]).values()) / len(got["polls"])
        gets = len(got["polls"]) / n
        print(f"  polling: {gets:.1f} GET /runs/{{id}} per cycle, {per_get:.1f} API commands each")
        for what, proc in (("resolve", "api"), ("resume", "worker")):
            c = {k: v for k, v in s.tally(got[what], bg, len(got[what])).items() if k[0] == proc}
            parts = ", ".join(f"{k} {v:.1f}" for k, v in top(c, 6, scripts=False).items())
            print(f"  per {what}, {proc} side: {total(c):.1f}", end="")
            print(f" (+{total(c, None, True):.1f} in scripts): {parts}, ...")
    print(f"  (a GET issues {', '.join(sorted(s.get_cmds))}; only those are subtracted)")
    print(f"\ntop 12 commands per cycle{'':<22}" + "".join(f"{m:>14}" for m in modes))
    tops = [top(net, 1000) for net in nets.values()]
    for cmd in top(nets["one approval"], 12):
        print(f"  {cmd:<44}" + "".join(f"{t[cmd]:>14.1f}" for t in tops))


def history(s: Session, h: int, bg: Counts) -> None:
    got = cycle(s, {"agent_id": "loop", "input": {"steps": h + 4}}, list(range(h + 4)))
    print(f"\n--history {h}: one loop run; API per resolve, worker per resume, API per GET")
    heads = ("resolve", "in scripts", "resume", "in scripts", "GET")
    print(f"{'':<16}" + "".join(f"{x:>10} " for x in heads))
    for label, i in (("answers 1-3", 0), (f"answers {h + 1}-{h + 3}", h)):
        res, rsm = (s.tally(got[what][i : i + 3], bg, 3) for what in ("resolve", "resume"))
        windows = [(a[0], b[0]) for a, b in got["resume"][i : i + 3]]
        polls = [p for p in got["polls"] if any(a <= p[0][0] < b for a, b in windows)]
        cells = [total(res, "api"), total(res, "api", True), total(rsm, "worker")]
        cells += [total(rsm, "worker", True), sum(s.get_cost(polls).values()) / len(polls)]
        print(f"{label:<16}" + "".join(f"{v:>10.1f} " for v in cells))
        worker = {k: v for k, v in rsm.items() if k[0] == "worker"}
        print("    worker: " + ", ".join(f"{k} {v:.1f}" for k, v in top(worker, 6).items()))


def start(argv: list[str], env: dict[str, str], log: Path, probe: str) -> subprocess.Popen:
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    end = time.monotonic() + 60
    while time.monotonic() < end and proc.poll() is None:
        with contextlib.suppress(httpx.HTTPError, redis.ConnectionError):
            if probe.startswith("redis:") and redis.Redis.from_url(probe).ping():
                return proc
            if probe.startswith("http:") and httpx.get(probe).status_code == 200:
                return proc
        time.sleep(0.05)
    proc.kill()
    sys.exit(f"{log.name}: not ready\n{log.read_text()[-3000:]}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--history", type=int, default=0, help="also measure the N+1th answer")
    parser.add_argument("--min-idle", type=float, default=10.0, help="shortest idle window, s")
    args = parser.parse_args()
    logs, rport, port = Path(tempfile.mkdtemp()), free_port(), free_port()
    url, base = f"redis://127.0.0.1:{rport}/0", f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROKER_")}
    env.pop("OPENAI_API_KEY", None)  # the deterministic offline model
    agents = "naming=agent.naming:graph,loop=bench.graphs:loop"
    env |= {"REDIS_URL": url, "BROKER_KEY_PREFIX": "benchcmd", "BROKER_AGENTS": agents}
    env |= {"BROKER_AUTH": "off", "BROKER_POLL_DELAY_S": "0.5", "PYTHONPATH": str(ROOT)}
    cli, server = [sys.executable, "-m", "broker.cli"], ["redis-server", "--port", str(rport)]
    plan = {
        "redis": ([*server, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], url),
        "api": ([*cli, "api", "--host", "127.0.0.1", "--port", str(port)], f"{base}/healthz"),
        "worker": ([*cli, "worker"], f"{base}/readyz"),
    }
    procs: dict[str, subprocess.Popen] = {}
    try:
        for name, (argv, probe) in plan.items():
            procs[name] = start(argv, env, logs / f"{name}.log", probe)
        roots = {os.getpid(): "bench", procs["api"].pid: "api", procs["worker"].pid: "worker"}
        (monitor := Monitor(rport, roots)).start()
        time.sleep(1.0)  # idle before counting
        with httpx.Client(base_url=base, timeout=30) as http:
            s, hi = Session(rport, monitor, http), {"messages": [{"role": "user", "content": "hi"}]}
            modes = {
                "one approval": measure(s, {**hi, "agent_name": "Ada"}, [True], args),
                "naming": measure(s, hi, [True, "Ada"], args),
            }
            print(f"redis-server {s.r.info()['redis_version']}, API and one worker; logs: {logs}")
            report(s, modes, args.cycles)
            if args.history:
                history(s, args.history, modes["one approval"][1])
    finally:
        for proc in reversed(procs.values()):  # the worker, the API, then the server
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(15)
            proc.kill()


if __name__ == "__main__":
    main()
