"""What the strict body parser costs: broker.core.jsonsafe.parse against plain json.loads.

Bodies of the largest size the API takes (BROKER_MAX_INPUT_BYTES, 256 KiB by default),
shaped to be the parser's worst cases (one flat array of small numbers, of short
non-ASCII strings, of small objects; nesting right at the limit), and a typical answer.
Each is parsed --repeat times in this process; the figures are the median and p99 ms of
one parse. The check is one walk over the parsed value, so its cost follows the number
of values, not the bytes.

    uv run python -m bench.strict_json [--repeat 50]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from broker.core import jsonsafe

LIMIT = 256 * 1024
DEPTH = 64


def _fill(item: Any) -> bytes:
    """A JSON array of ``item`` as long as fits in LIMIT bytes."""
    one = len(json.dumps(item).encode()) + 2
    return json.dumps([item] * (LIMIT // one)).encode()


BODIES: dict[str, bytes] = {
    "typical answer (120 B)": json.dumps(
        {"value": {"decisions": [{"type": "approve"}]}, "resolved_by": "ada@example.com"}
    ).encode(),
    "256 KiB of small integers": _fill(7),
    "256 KiB of short non-ASCII strings": _fill("é"),
    "256 KiB of small objects": _fill({"a": 1}),
    "nested to the limit (64)": ("[" * DEPTH + "]" * DEPTH).encode(),
}


def _time(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0) * 1000)
    runs.sort()
    return statistics.median(runs), runs[min(len(runs) - 1, int(len(runs) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    print(f"{'body':36} {'bytes':>8} {'json p50':>9} {'strict p50':>11} {'strict p99':>11}")
    for name, raw in BODIES.items():
        plain, _ = _time(lambda raw=raw: json.loads(raw), args.repeat)
        p50, p99 = _time(lambda raw=raw: jsonsafe.parse(raw, DEPTH), args.repeat)
        print(f"{name:36} {len(raw):>8} {plain:>9.2f} {p50:>11.2f} {p99:>11.2f}")


if __name__ == "__main__":
    main()
