"""Tables of bench/compare.py: the cycle rows, the costs per cycle, and the targets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench._common import pct
from bench._cycles import Row
from bench._hot import Costs


@dataclass
class Target:
    what: str
    measured: str
    against: str  # the floor or peer it is measured against, or the bound
    ratio: float | None  # measured / against, when both are figures
    ok: bool


def _row(rows: list[Row], name: str, clients: int) -> Row | None:
    return next((r for r in rows if r.name == name and r.clients == clients), None)


def print_rows(rows: list[Row], peer_cpu: float | None) -> None:
    print("\nA-C. whole approval cycles; resume leg = answer sent → run seen ended")
    head = f"{'path':<28}{'clients':>8}{'cycles':>7}{'cycles/s':>10}"
    print(head + f"{'leg p50 ms':>11}{'leg p99 ms':>11}  CPU per cycle")
    top = max(r.clients for r in rows)
    for r in rows:
        cpu = ""
        if r.cpu_s is not None:
            cpu = f"{r.cpu_s / r.cycles * 1000:.2f} ms this process"
            if r.redis is not None:
                cpu += f" + {r.redis.cpu_s / r.cycles * 1000:.2f} ms Redis"
                cpu += f", {r.redis.total / r.cycles:.0f} commands"
        elif r.name == "langgraph dev" and r.clients == top and peer_cpu is not None:
            cpu = f"{peer_cpu * 1000:.2f} ms its process"
        line = f"{r.name:<28}{r.clients:>8}{r.cycles:>7}{r.per_s:>10.1f}"
        print(line + f"{r.p50_ms:>11.2f}{r.p99_ms:>11.2f}  {cpu}")
    broker = _row(rows, "broker, 1 worker", top)
    if broker is None:
        return
    print(f"\n  at {top} clients, broker (1 worker) cycles/s against:")
    for name in ("in-process, InMemorySaver", "in-process, broker saver", "langgraph dev"):
        other = _row(rows, name, top)
        if other is not None:
            print(f"    {name:<28} {broker.per_s / other.per_s:6.2f}x")
    two = _row(rows, "broker, 2 workers", top)
    if two is not None:
        print(f"    {'broker, 2 workers':<28} {broker.per_s / two.per_s:6.2f}x")
    print("  at 1 client, broker resume leg against:")
    for name in ("in-process, InMemorySaver", "in-process, broker saver", "langgraph dev"):
        base, b1 = _row(rows, name, 1), _row(rows, "broker, 1 worker", 1)
        if base is not None and b1 is not None:
            p50, p99 = b1.p50_ms / base.p50_ms, b1.p99_ms / base.p99_ms
            line = f"    {name:<28} p50 {p50:6.2f}x, p99 {p99:6.2f}x"
            if name == "in-process, broker saver":
                line += f" (broker p99 / floor p50: {b1.p99_ms / base.p50_ms:.1f}x)"
            print(line)


def print_costs(c: Costs, clients: int) -> None:
    print(f"\nD. per whole cycle, broker, {clients} clients, 1 worker ({c.cycles} cycles;")
    print("   idle background measured first and taken out; the SSE reads are in)")
    for name, cpu in c.cpu_s.items():
        idle = c.background_cpu.get(name, 0) * 1000
        print(f"  CPU {name:<26}{cpu * 1000:>8.2f} ms   (idle: {idle:.1f} ms/s)")
    print(f"  Redis commands (incl. inside scripts) {c.redis.total:>6.1f}")
    print(f"  Redis CPU (used_cpu_sys+used_cpu_user) {c.redis.cpu_s * 1000:>5.2f} ms")
    print(f"  Redis bytes in / out {c.redis.net_in:,.0f} / {c.redis.net_out:,.0f}")
    bg = c.background
    print(f"  idle background: {bg.total:.1f} commands/s, {bg.cpu_s * 1000:.2f} ms Redis CPU/s")
    print("  top 12 commands per cycle:")
    top = sorted(c.redis.commands.items(), key=lambda x: -x[1])[:12]
    for name, n in top:
        print(f"    {name:<28}{n:>7.1f}")


def _ratio(what: str, a: float, b: float, bound: float, *, at_least: bool, fmt: str) -> Target:
    ratio = a / b if b else float("nan")
    ok = ratio >= bound if at_least else ratio <= bound
    return Target(what, fmt.format(a), fmt.format(b), ratio, ok)


def _bound(what: str, value: float, bound: float, *, at_least: bool, fmt: str) -> Target:
    ok = value >= bound if at_least else value <= bound
    return Target(what, fmt.format(value), "bound " + fmt.format(bound), None, ok)


def window(values: list[float], end: int, width: int = 25) -> float:
    return pct(values[max(0, end - width) : end], 50)


def targets(got: dict[str, Any]) -> list[Target]:
    out: list[Target] = []
    rows: list[Row] = got.get("floor", []) + got.get("broker", [])
    rows += got.get("peer", ([], "", None))[0]
    top = max((r.clients for r in rows), default=16)
    broker, b1 = _row(rows, "broker, 1 worker", top), _row(rows, "broker, 1 worker", 1)
    peer, mem = _row(rows, "langgraph dev", top), _row(rows, "in-process, InMemorySaver", top)
    saver1 = _row(rows, "in-process, broker saver", 1)
    saver = _row(rows, "in-process, broker saver", top)
    cps = "{:.1f}/s"
    if broker and peer:
        out.append(
            _ratio(
                f"{top} clients: cycles/s >= 5x langgraph dev",
                broker.per_s,
                peer.per_s,
                5,
                at_least=True,
                fmt=cps,
            )
        )
    if broker and mem:
        out.append(
            _ratio(
                f"{top} clients: cycles/s >= 50% of InMemorySaver floor",
                broker.per_s,
                mem.per_s,
                0.5,
                at_least=True,
                fmt=cps,
            )
        )
    if b1 and saver1:
        ms = "{:.2f} ms"
        out.append(
            _ratio(
                "resume leg p50 <= 4x floor (broker saver)",
                b1.p50_ms,
                saver1.p50_ms,
                4,
                at_least=False,
                fmt=ms,
            )
        )
        out.append(
            _ratio(
                "resume leg p99 <= 10x floor p99",
                b1.p99_ms,
                saver1.p99_ms,
                10,
                at_least=False,
                fmt=ms,
            )
        )
    costs: Costs | None = got.get("costs")
    if costs:
        t = _bound(
            "Redis commands per cycle <= 40", costs.redis.total, 40, at_least=False, fmt="{:.1f}"
        )
        if saver and saver.redis:
            t.against += f" (floor {saver.redis.total / saver.cycles:.0f})"
        out.append(t)
        t = _bound(
            "Redis CPU per cycle <= 0.7 ms",
            costs.redis.cpu_s * 1000,
            0.7,
            at_least=False,
            fmt="{:.2f} ms",
        )
        if saver and saver.redis:
            t.against += f" (floor {saver.redis.cpu_s / saver.cycles * 1000:.2f})"
        out.append(t)
    if "healthz" in got:
        h = got["healthz"]
        out.append(
            _ratio(
                "/healthz p50 <= 1.5x bare Starlette",
                pct(h["broker"], 50) * 1000,
                pct(h["bare"], 50) * 1000,
                1.5,
                at_least=False,
                fmt="{:.3f} ms",
            )
        )
    if "inbox" in got:
        i = got["inbox"]
        page, hz = pct(i.samples["page"], 50) * 1000, pct(i.samples["healthz"], 50) * 1000
        out.append(
            _ratio(
                f"{i.pending:,} pending: page of 50 <= 2x /healthz",
                page,
                hz,
                2,
                at_least=False,
                fmt="{:.2f} ms",
            )
        )
        out.append(
            _bound(
                "Redis memory per pending <= 2,000 B",
                i.bytes_per,
                2000,
                at_least=False,
                fmt="{:,.0f} B",
            )
        )
        out.append(
            _bound(
                f"recording {i.pending:,} pending >= 2,000/s",
                i.rate,
                2000,
                at_least=True,
                fmt="{:,.0f}/s",
            )
        )
    if "growth" in got:
        g = got["growth"]
        q, w = g.questions, len(g.young.times)
        late, young = window(g.old.times, q, w) * 1000, window(g.young.times, w, w) * 1000
        what = f"answer #{q} <= 1.2x #1 (medians of {w}, interleaved)"
        out.append(_ratio(what, late, young, 1.2, at_least=False, fmt="{:.2f} ms"))
        c1, cq = window(g.young.commands, w, w), window(g.old.commands, q, w)
        ratio = cq / c1 if c1 else None
        what = f"answer #{q}: same commands as #1 (medians of {w})"
        out.append(Target(what, f"{cq:.0f}", f"{c1:.0f}", ratio, cq == c1))
        one, past = pct(g.get_one, 50) * 1000, pct(g.get_past, 50) * 1000
        what = f"GET /runs/{{id}}, {max(q, g.past)} past <= 1.2x 1 past"
        out.append(_ratio(what, past, one, 1.2, at_least=False, fmt="{:.2f} ms"))
    return out


def print_summary(ts: list[Target]) -> None:
    print("\nSummary: targets (measured, against its floor, peer or bound)")
    print(f"  {'target':<50}{'measured':>12}{'against':>30}{'ratio':>8}  result")
    for t in ts:
        ratio = f"{t.ratio:.2f}x" if t.ratio is not None else "-"
        print(
            f"  {t.what:<50}{t.measured:>12}{t.against:>30}{ratio:>8}  {'PASS' if t.ok else 'MISS'}"
        )
