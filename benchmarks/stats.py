"""Small statistics and timing helpers."""

from __future__ import annotations

import statistics
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
