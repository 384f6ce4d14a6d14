"""Small statistics and timing helpers."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """Latencies in milliseconds."""

    count: int
    mean: float
    median: float
    p95: float

    @classmethod
    def of(cls, samples_ns: list[int]) -> Summary:
        ms = sorted(s / 1e6 for s in samples_ns)
        return cls(
            count=len(ms),
            mean=statistics.fmean(ms),
            median=statistics.median(ms),
            p95=ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))],
        )


def run_for(fn: Callable[[], object], seconds: float, samples: list[int]) -> tuple[int, float]:
    """Call `fn` back to back for about `seconds`; append each call's ns to `samples`.

    Returns (calls, elapsed seconds).
    """
    clock = time.perf_counter_ns
    start = clock()
    deadline = start + int(seconds * 1e9)
    calls = 0
    now = start
    while now < deadline:
        fn()
        after = clock()
        samples.append(after - now)
        now = after
        calls += 1
    return calls, (now - start) / 1e9
