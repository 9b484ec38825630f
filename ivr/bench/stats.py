"""Percentiles and summaries for latency samples (milliseconds unless named otherwise)."""

from __future__ import annotations

import math
from typing import Iterable


def percentile(values: Iterable[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by linear interpolation; None without samples."""
    data = sorted(v for v in values if v is not None and not math.isnan(v))
    if not data:
        return None
    if len(data) == 1:
        return data[0]
    rank = q / 100 * (len(data) - 1)
    low = int(math.floor(rank))
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def summary(values: Iterable[float], digits: int = 1) -> dict:
    """``{n, p50, p95, p99, max, mean}`` of the samples (None for each figure when empty)."""
    data = [v for v in values if v is not None]
    out: dict = {"n": len(data)}
    for name, q in (("p50", 50), ("p95", 95), ("p99", 99)):
        value = percentile(data, q)
        out[name] = None if value is None else round(value, digits)
    out["max"] = round(max(data), digits) if data else None
    out["mean"] = round(sum(data) / len(data), digits) if data else None
    return out


def slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of y over x; None with fewer than two distinct x."""
    if len(points) < 2:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in points) / sxx
