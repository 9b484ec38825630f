"""`ivr bench` itself: its arithmetic, its load against the real app, and the command end to end.

Speed is never asserted here (the figures are what the benchmark reports); these tests
check that the benchmark measures what it says and leaves nothing behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.resilience.conftest import KO, SPEECH

ROOT = Path(__file__).resolve().parents[2]


def test_percentiles_and_slope():
    from ivr.bench.stats import percentile, slope, summary

    assert percentile([], 50) is None
    assert percentile([5], 99) == 5
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile(range(101), 99) == 99
    s = summary([10, 20, 30, 40, 1000])
    assert s["n"] == 5 and s["p50"] == 30 and s["max"] == 1000 and s["p99"] > s["p95"] > s["p50"]
    assert slope([(0, 100), (1, 102), (2, 104)]) == pytest.approx(2.0)
    assert slope([(1, 5)]) is None


def test_the_soak_reads_memory_per_call_and_after_the_pool_last_grew():
    from ivr.bench.report import soak_memory
    from ivr.bench.sampler import recognizers_alive

    # 1000 calls, one per second; the pool grows from 4 to 6 recognizers at call 300 (+80 MB),
    # and memory is flat otherwise
    marks = [(float(t), t) for t in range(1, 1001)]
    rss = [(float(t), 1000.0 + (80 if t >= 300 else 0)) for t in range(0, 1001, 10)]
    alive = [(float(t), 4 if t < 300 else 6) for t in range(0, 1001, 20)]
    m = soak_memory(marks, rss, alive)
    assert m["rss_after_warmup_mb"] == 1000.0 and m["rss_end_mb"] == 1080.0
    assert m["slope_mb_per_1000_calls"] > 50  # over all the calls the step reads as growth...
    assert (m["recognizers_after_warmup"], m["recognizers_max"], m["pool_last_grew_at_call"]) == (4, 6, 300)
    assert m["slope_after_pool_grew_mb_per_1000_calls"] == pytest.approx(0.0)  # ...not after it
    assert m["calls_after_pool_grew"] == 700
    # fifths of calls 100-1000: the step at call 300 falls in the second
    assert m["fifths_mean_mb"][0] == 1000.0 < m["fifths_mean_mb"][1] < 1080.0 == m["fifths_mean_mb"][4]
    assert m["fifths_max_mb"] == [1000.0] + [1080.0] * 4
    # memory that keeps growing with calls shows there too
    leak = soak_memory(marks, [(t, 1000.0 + 0.1 * t) for t, _ in rss], alive)
    assert leak["slope_after_pool_grew_mb_per_1000_calls"] == pytest.approx(100.0)
    assert "recognizers_max" not in soak_memory(marks, rss)  # no /metrics: the memory figures alone
    page = ('ivr_speech_recognizers{kind="made",model="ko"} 7.0\n'
            'ivr_speech_recognizers{kind="retired",model="ko"} 2.0\n'
            'ivr_speech_recognizers{kind="idle",model="ko"} 3.0\n')
    assert recognizers_alive(page) == 5 and recognizers_alive("up 1\n") is None


def test_recordings_are_cut_at_the_end_of_speech():
    from ivr.bench.load import speech_only
    from ivr.telephony.wavstream import read_wav

    audio = read_wav(SPEECH / "ko_payment.wav")  # 0.5 s silence, the phrase, 1.5 s silence
    cut = speech_only(audio)
    assert len(audio) - len(cut) == pytest.approx(1.5 * 8000, abs=0.1 * 8000)
    assert speech_only(read_wav(SPEECH / "silence_6s.wav")) == b""


def test_waves_of_calls_against_the_real_app_report_every_figure(live_hotline):
    from ivr.bench.load import CallDriver, caller_audio, fetch_server_speech, report
    from ivr.bench.target import AgentDesk, Target

    h = live_hotline()
    target = Target(h.base_url, h.public_url, h.twilio_token, h.api_token, number=KO)
    desk = AgentDesk(target)
    assert desk.on_shift() == len(h.router.agents_snapshot())
    driver = CallDriver(target, desk, speed=4.0, audio=caller_audio(names=("ko_payment", "ko_refund")))
    try:
        results = driver.waves(3, 3)
    finally:
        desk.off_shift()
    assert fetch_server_speech(target, results) == 3
    r = report(results, 10.0, h.config.asr.endpointing.silence_after_speech_s, speed=4.0)
    assert r["calls"] == 3 and r["error_count"] == 0, r["errors"]
    assert r["completed"] == 3 and r["calls_per_minute"] == pytest.approx(18.0)
    assert set(r["webhook_ms"]) >= {"voice", "connect-action", "status"}
    assert r["webhook_ms"]["voice"]["n"] == 3
    assert r["recognizer_lag_s"]["n"] >= 3  # one per listening turn
    assert r["server_decode_lag_s"]["n"] >= 1
    dialed = [x for x in results if "speech_end_to_dial_ms" in x.timings]
    assert r["speech_end_to_dial_ms"]["n"] == len(dialed)
    assert all(a["state"] == "offline" for a in h.router.agents_snapshot())  # the desk went home


def test_open_loop_webhook_rate_measures_from_the_due_time_and_cleans_up(live_hotline):
    from ivr.bench.rate import webhook_rate
    from ivr.bench.target import Target

    h = live_hotline()
    target = Target(h.base_url, h.public_url, h.twilio_token, h.api_token, number=KO)
    r = webhook_rate(target, rate=40, seconds=1.0, warmup_s=0.5, senders=4)
    assert r["requests"] == 40 and r["error_count"] == 0, r["errors"]
    # latency counts from when a request was due, so it is never below the service time
    assert r["latency_ms"]["p50"] >= r["service_ms"]["p50"] - 0.01
    assert h.redis.zcard(h.keys.live_calls()) == 0  # every call got its status callback


def test_ivr_bench_spawns_a_server_places_a_call_and_writes_json(tmp_path):
    out = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, "-m", "ivr", "--config", str(ROOT / "config.yaml"), "bench", "--spawn",
                           "--calls", "1", "--speed", "4", "--agents", "2", "--callers", "understood",
                           "--warmup", "2", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "calls per minute completed" in proc.stdout
    result = json.loads(out.read_text())
    assert result["calls_report"]["completed"] == 1 and result["callers"] == "understood"
    assert result["agents_on_shift"] == 2
    assert result["warmup"] == {"calls": 2, "errors": 0}
    (call,) = result["calls"]  # each call's own figures, to tell which caller a percentile is
    assert call["caller"].startswith("ko_kw_") and call["ok"] and call["sid"].startswith("CA")
    assert call["timings"]["speech_end_to_dial_ms"] > 0 and call["streams"][0]["closed_by"] == "server"
    roles = {p["role"] for p in result["processes"]["processes"]}
    assert "worker" in roles and "master" in roles


def test_ivr_bench_says_what_to_do_without_a_server(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ivr", "--config", str(ROOT / "config.yaml"), "bench",
                           "--url", "http://127.0.0.1:9", "--twilio-token", "x", "--api-token", "y", "--calls", "1"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "ivr bench:" in proc.stderr


def test_ivr_bench_profile_classifier_runs_the_classifier_benchmark(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ivr", "--config", str(ROOT / "config.yaml"), "bench",
                           "--profile", "classifier"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("hotline") and "_p99_ms=" in proc.stdout


def test_the_report_takes_off_the_silence_each_turn_waited_and_keeps_the_worst_read_lag():
    from ivr.bench.load import CallResult, report

    def call(sid, settled, close_ms, dial_ms, read_lag_ms, streams=1):
        turns = [{"closed_by": "server", "audio_s": 3.0, "speech_end_s": 1.5, "speech_end_to_close_ms": 900.0}
                 for _ in range(streams - 1)]
        turns.append({"closed_by": "server", "audio_s": 2.0, "speech_end_s": 1.5, "speech_end_to_close_ms": close_ms})
        return CallResult(sid, "x", 0.0, 5.0, True, "talked to a", "a", [], {}, {"speech_end_to_dial_ms": dial_ms},
                          turns, {"outcome": "speech", "settled": settled, "decode_latency_ms": close_ms - 50,
                                  "read_lag_max_ms": read_lag_ms})

    r = report([call("CA1", True, 400.0, 430.0, 20.0), call("CA2", False, 850.0, 880.0, 450.0, streams=2)],
               10.0, 0.7, settled_guard_s=0.3)
    # the settled turn waited 0.3 s (0.1 s late), the others 0.7 s (0.2 and 0.15 s late)
    assert (r["recognizer_lag_s"]["p50"], r["recognizer_lag_s"]["max"]) == (0.15, 0.2)
    assert r["recognizer_lag_s"]["n"] == 3
    assert r["speech_end_to_dial_beyond_guard_ms"]["max"] == 180.0
    assert r["speech_end_to_dial_beyond_guard_ms"]["p50"] == 155.0  # 130 and 180
    assert r["settled_turns"] == 1 and r["settled_guard_wall_s"] == 0.3
    assert r["server_read_lag_max_s"]["max"] == 0.45
    # without a shorter guard every turn is taken to have waited the full one
    assert report([call("CA1", True, 400.0, 430.0, 20.0)], 10.0, 0.7)["recognizer_lag_s"]["max"] == -0.3
