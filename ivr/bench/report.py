"""A benchmark's figures for people (a table) and for the README and CI (JSON)."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path


def machine() -> dict:
    import psutil

    load = os.getloadavg() if hasattr(os, "getloadavg") else (None, None, None)
    return {"cpus": psutil.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "load_avg_before": [round(x, 2) for x in load if x is not None],
            "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _ms(s: dict | None, keys=("p50", "p95", "p99")) -> str:
    if not s or not s.get("n"):
        return "-"
    return " / ".join("-" if s.get(k) is None else f"{s[k]:g}" for k in keys) + f"  (n={s['n']})"


def calls_rows(r: dict) -> list[tuple[str, str]]:
    rows = [("calls placed / completed without error", f"{r['calls']} / {r['completed']}"),
            ("calls per minute completed", f"{r['calls_per_minute']}"),
            ("outcomes", ", ".join(f"{k}: {v}" for k, v in r["outcomes"].items()))]
    for kind, s in r["webhook_ms"].items():
        rows.append((f"webhook {kind} ms p50 / p95 / p99", _ms(s)))
    rows += [
        ("end of speech -> <Dial> ms p50 / p95 / p99", _ms(r["speech_end_to_dial_ms"])),
        (f"  beyond the silence guard waited ({r['silence_guard_wall_s']:g} s; "
         f"{r.get('settled_guard_wall_s', r['silence_guard_wall_s']):g} s for the {r.get('settled_turns', 0)} settled)",
         _ms(r["speech_end_to_dial_beyond_guard_ms"])),
        ("stream closed -> <Dial> ms p50 / p95 / p99", _ms(r["stream_close_to_dial_ms"])),
        ("recognizer lag s p50 / p95 / max (stand-in)", _ms(r["recognizer_lag_s"], ("p50", "p95", "max"))),
        ("decode lag s p50 / p95 / max (server record)", _ms(r["server_decode_lag_s"], ("p50", "p95", "max"))),
        ("worst read lag behind real time per call s p50 / p95 / max (server)",
         _ms(r.get("server_read_lag_max_s") or {}, ("p50", "p95", "max"))),
        ("errors", str(r["error_count"]) + (f"  first: {r['errors'][0]}" if r["errors"] else "")),
    ]
    return rows


def process_rows(p: dict | None) -> list[tuple[str, str]]:
    if not p:
        return [("server processes", "not sampled (give --pid, or run with --spawn)")]
    rows = []
    for proc in p["processes"]:
        rows.append((f"{proc['role']} {proc['pid']} CPU % mean / p95 / max",
                     f"{proc['cpu_mean_pct']} / {proc['cpu_p95_pct']} / {proc['cpu_max_pct']}"))
        rows.append((f"{proc['role']} {proc['pid']} RSS MB start / end / max",
                     f"{proc['rss_start_mb']} / {proc['rss_end_mb']} / {proc['rss_max_mb']}"
                     + (f"  (slope {proc['rss_slope_mb_per_h']} MB/h)" if proc.get("rss_slope_mb_per_h") is not None
                        else "")))
    return rows


def rate_rows(r: dict) -> list[tuple[str, str]]:
    return [
        (f"{r['path']} at {r['rate_per_s']:g}/s for {r['seconds']:g} s", f"{r['requests']} requests, "
                                                                          f"achieved {r['achieved_per_s']}/s"),
        ("latency from due time ms p50 / p95 / p99", _ms(r["latency_ms"])),
        ("max", f"{r['latency_ms']['max']} ms"),
        ("service time ms p50 / p95 / p99", _ms(r["service_ms"])),
        ("sent late (generator) ms p50 / p99", _ms(r["sent_late_ms"], ("p50", "p99"))),
        ("errors", str(r["error_count"]) + (f"  first: {r['errors'][0]}" if r["errors"] else "")),
    ]


def table(title: str, rows: list[tuple[str, str]]) -> str:
    width = max((len(k) for k, _ in rows), default=0)
    lines = [title, "-" * len(title)]
    lines += [f"{k.ljust(width)}  {v}" for k, v in rows]
    return "\n".join(lines)


def default_path(mode: str) -> Path:
    return Path("bench-results") / f"{mode}-{time.strftime('%Y%m%d-%H%M%S')}.json"


def write_json(result: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    return path


def soak_memory(marks: list, rss_series: list, alive_series: list | None = None) -> dict:
    """One worker's memory against calls completed in a soak.

    ``marks``: (time, calls done); ``rss_series``: (time, MB); ``alive_series``: (time,
    speech recognizers alive). The first tenth of the calls is warm-up. Each recognizer
    holds its own graph cache, so besides the slope over the second half the slope is also
    given over the calls after the pool last grew: memory that still grows there grows
    with calls, not with how many callers were in at once."""
    from bisect import bisect_right

    from ivr.bench.stats import slope

    times = [t for t, _ in marks]
    total = marks[-1][1] if marks else 0

    def done_at(t: float) -> int:
        return marks[bisect_right(times, t) - 1][1] if times and t >= times[0] else 0

    points = [(done_at(t) / 1000, rss) for t, rss in rss_series if done_at(t) >= total / 10]
    out = {"rss_after_warmup_mb": points[0][1] if points else None,
           "rss_end_mb": points[-1][1] if points else None}
    for name, pts in (("slope", points), ("second_half_slope", [p for p in points if p[0] >= total / 2000])):
        value = slope(pts)
        out[f"{name}_mb_per_1000_calls"] = round(value, 2) if value is not None else None
    # Worn recognizers are replaced (freed, heap trimmed), so memory saws up and down; a line
    # through a saw depends on where the run stops. The mean and peak of each fifth of the
    # calls after warm-up show whether the saw itself climbs.
    fifths: list[list[float]] = [[] for _ in range(5)]
    span = max(total - total / 10, 1)
    for x, rss in points:
        fifths[min(4, int((x * 1000 - total / 10) / span * 5))].append(rss)
    out["fifths_mean_mb"] = [round(sum(f) / len(f), 1) if f else None for f in fifths]
    out["fifths_max_mb"] = [max(f) if f else None for f in fifths]
    alive = alive_series or []
    if alive:
        warm = [n for t, n in alive if done_at(t) <= total / 10] or [alive[0][1]]
        peak = max(warm[-1], *(n for _, n in alive))
        # the pool last grew: the first time it reached its peak after warm-up
        grew = next((t for t, n in alive if n == peak and done_at(t) > total / 10), None) if peak > warm[-1] else None
        since = done_at(grew) if grew is not None else 0
        steady = [p for p in points if p[0] * 1000 >= since]
        value = slope(steady) if len(steady) >= 5 and total - since >= total / 5 else None
        out.update({"recognizers_after_warmup": warm[-1], "recognizers_end": alive[-1][1], "recognizers_max": peak,
                    "pool_last_grew_at_call": since if grew is not None else None,
                    "slope_after_pool_grew_mb_per_1000_calls": round(value, 2) if value is not None else None,
                    "calls_after_pool_grew": total - since})
    return out
