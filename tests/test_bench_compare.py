"""bench/compare.py's pure helpers: the SSE reader, the profile ranking, the targets."""

from __future__ import annotations

from pathlib import Path

import httpx

from bench._cycles import Row, sse
from bench._procs import top_frames
from bench._report import targets, window


async def test_sse_reads_events_and_joins_data_lines() -> None:
    body = (
        b": keep-alive\n\n"
        b'id: 1-0\nevent: run.interrupted\ndata: {"a":\ndata: 1}\n\n'
        b'event: values\ndata: {"answer": true}\n'
    )
    response = httpx.Response(200, content=body)
    got = [item async for item in sse(response)]
    assert got == [("run.interrupted", {"a": 1}), ("values", {"answer": True})]


def test_profile_leaves_out_waits_and_entry_frames(tmp_path: Path) -> None:
    raw = tmp_path / "api.txt"
    raw.write_text(
        "<module> (broker/cli.py:1);work (/x/site-packages/app/mod.py:10) 30\n"
        "<module> (broker/cli.py:1);work (/x/site-packages/app/mod.py:12);leaf (m.py:3) 10\n"
        "<module> (broker/cli.py:1);Condition.wait (/usr/lib/python3.11/threading.py:320) 99\n"
    )
    busy, idle, own, total = top_frames(raw)
    assert (busy, idle) == (40, 99)
    assert own == [("work (app/mod.py)", 30), ("leaf (m.py)", 10)]
    assert total == [("work (app/mod.py)", 40), ("leaf (m.py)", 10)]


def test_targets_judge_against_the_floor_and_the_peer() -> None:
    def row(name: str, clients: int, per_s: float, leg_s: float) -> Row:
        return Row(name, clients, int(per_s * 10), 10.0, [leg_s] * 5)

    one_client = row("broker, 1 worker", 1, 20, 0.030)
    got: dict[str, object] = {
        "floor": [
            row("in-process, InMemorySaver", 16, 100, 0.001),
            row("in-process, broker saver", 1, 80, 0.010),
        ],
        "broker": [one_client, row("broker, 1 worker", 16, 60, 0.2)],
        "peer": ([row("langgraph dev", 16, 10, 1.0)], "versions", None),
    }
    verdicts = {t.what.split(":")[-1].strip(): t.ok for t in targets(got)}
    assert verdicts == {
        "cycles/s >= 5x langgraph dev": True,  # 60 against 10
        "cycles/s >= 50% of InMemorySaver floor": True,  # 60 against 100
        "resume leg p50 <= 4x floor (broker saver)": True,  # 30 ms against 10 ms
        "resume leg p99 <= 10x floor p99": True,
    }
    one_client.legs = [0.050] * 5
    assert not next(t for t in targets(got) if "p50 <= 4x" in t.what).ok
    assert window([1, 2, 3, 100, 5, 6], 5, 3) == 5
