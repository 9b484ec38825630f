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
