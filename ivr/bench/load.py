"""Simulated calls against a server: waves of simultaneous callers, or random arrivals.

Every call is a whole call played by the Twilio stand-in: signed webhooks, the greeting,
one Media Stream carrying a recorded caller at real-time pace (or ``speed`` times
faster), routing, the agent's side of ``<Dial>``, the status callback. The recordings
are cut at the caller's real end of speech (found from the audio level), so the line
then carries silence as a live caller's would and the stand-in's clock knows the
instant the caller stopped talking.

What is measured, per call, from Twilio's side of the line:

- each webhook's latency (request sent → TwiML received), by kind;
- end of speech → ``<Dial>``: from the frame where the caller stopped talking to the
  routing answer of the ``<Connect>`` action. It includes the server's silence guard
  (``asr.endpointing.silence_after_speech_s``), the wait that tells a pause from the end
  of an utterance, so it is also reported *beyond the guard*;
- recognizer lag: when the server closed the stream after the end of speech, minus the
  silence guard that turn waited (the shorter one when the words had settled the call). A recognizer that falls behind real time closes late by as much as it
  is behind, so this is the lag a caller feels (it also holds the endpointer's own
  decision time and the network);
- server-side, from the call record when an API token is given: the listener's
  ``decode_latency_ms`` (arrival of the last speech audio → final result) minus the guard,
  and ``read_lag_max_ms``: how far behind the caller's real time (the frames' own
  timestamps) the server read and decoded the stream, at worst in the call.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ivr.bench.stats import summary

ROOT = Path(__file__).resolve().parents[2]
SPEECH = ROOT / "tests" / "fixtures" / "speech"
# The recorded callers (tests/fixtures/speech/README.md): the nine phrases the small Korean
# model mis-hears (re-prompts, general queue, full silence guard), and the four it
# understands (routed at once, the shorter settled silence), as real callers mostly are.
MISHEARD = ("ko_payment", "ko_refund", "ko_password", "ko_hacked", "ko_game", "ko_app_crash", "ko_human",
            "ko_usage", "ko_complaint")
UNDERSTOOD = ("ko_kw_error", "ko_kw_game", "ko_kw_fee", "ko_kw_id_login")
CALLERS = MISHEARD
CALLER_SETS = {"misheard": MISHEARD, "understood": UNDERSTOOD, "all": MISHEARD + UNDERSTOOD}
SPEECH_DBFS = -50.0  # a 20 ms frame above this level is the caller talking


def speech_only(audio: bytes) -> bytes:
    """The recording up to the caller's last spoken frame (the trailing silence cut)."""
    from ivr.asr.audio import level_dbfs, mulaw_to_pcm16

    frame = 160
    last = 0
    for i in range(0, len(audio), frame):
        if level_dbfs(mulaw_to_pcm16(audio[i:i + frame])) > SPEECH_DBFS:
            last = i + frame
    return audio[:last]


def caller_audio(folder: Path = SPEECH, names=CALLERS) -> list[tuple[str, bytes]]:
    from ivr.telephony.wavstream import read_wav

    out = []
    for name in names:
        path = Path(folder) / f"{name}.wav"
        out.append((name, speech_only(read_wav(path))))
    return out


@dataclass
class CallResult:
    sid: str
    caller: str
    started_s: float  # since the run started (wall)
    ended_s: float
    ok: bool
    outcome: str
    connected_to: str | None
    errors: list[str]
    latencies: dict[str, list[float]]  # webhook kind -> ms
    timings: dict[str, float]
    streams: list[dict]  # closed_by, audio_s, speech_end_to_close_ms
    server_speech: dict = field(default_factory=dict)


def _result(trace, caller: str, started: float, ended: float) -> CallResult:
    latencies: dict[str, list[float]] = {}
    for r in trace.requests:
        if r.status is not None:
            latencies.setdefault(r.kind, []).append(r.latency_ms)
    streams = [{"closed_by": s.closed_by, "audio_s": s.audio_s, "speech_end_s": s.speech_end_s,
                "speech_end_to_close_ms": s.speech_end_to_close_ms} for s in trace.streams]
    return CallResult(trace.call_sid, caller, started, ended, trace.ok, trace.outcome, trace.connected_to,
                      list(trace.errors), latencies, dict(trace.timings), streams)


class CallDriver:
    """Places calls on ``target`` with the stand-in; thread-safe, one call per thread."""

    def __init__(self, target, desk=None, *, speed: float = 1.0, talk_s: float = 5.0,
                 audio: list[tuple[str, bytes]] | None = None, on_call: Callable[[CallResult], None] | None = None):
        self.target, self.desk, self.speed, self.talk_s = target, desk, speed, talk_s
        self.audio = audio or caller_audio()
        self._local = threading.local()  # one stand-in (and HTTP connection pool) per calling thread
        self.results: list[CallResult] = []
        self.lock = threading.Lock()
        self.t0 = time.perf_counter()
        self.on_call = on_call
        self._next = 0

    @property
    def standin(self):
        standin = getattr(self._local, "standin", None)
        if standin is None:
            standin = self._local.standin = self.target.standin(speed=self.speed)
        return standin

    def _pick(self) -> tuple[str, bytes]:
        with self.lock:
            item = self.audio[self._next % len(self.audio)]
            self._next += 1
        return item

    def place(self) -> CallResult:
        from ivr.telephony.standin import AgentBehaviour

        name, audio = self._pick()
        started = time.perf_counter() - self.t0
        try:
            # A caller asked again says the same thing again.
            trace = self.standin.place_call([audio, audio], to=self.target.number,
                                            agent_behaviour=[AgentBehaviour("answer", talk_s=self.talk_s)] * 4)
            result = _result(trace, name, started, time.perf_counter() - self.t0)
        except Exception as exc:  # the stand-in itself failed: count it, never stop the run
            result = CallResult("", name, started, time.perf_counter() - self.t0, False, "stand-in failed", None,
                                [f"stand-in: {exc.__class__.__name__}: {exc}"], {}, {}, [])
        if self.desk is not None and result.connected_to:
            self.desk.call_over(result.connected_to)
        with self.lock:
            self.results.append(result)
        if self.on_call is not None:
            self.on_call(result)
        return result

    def waves(self, calls: int, concurrency: int) -> list[CallResult]:
        """``calls`` calls in waves of ``concurrency`` placed at the same instant (they speak together)."""
        left = calls
        while left > 0:
            n = min(concurrency, left)
            barrier = threading.Barrier(n)

            def one() -> None:
                barrier.wait()
                self.place()

            threads = [threading.Thread(target=one, name=f"bench-call-{k}", daemon=True) for k in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            left -= n
        return self.results

    def arrivals(self, calls: int, over_s: float, seed: int = 1) -> list[CallResult]:
        """``calls`` calls arriving at random (a Poisson process) over ``over_s`` wall seconds."""
        rng = random.Random(seed)
        times = sorted(rng.uniform(0, over_s) for _ in range(calls))
        start = time.perf_counter()
        threads = []
        for at in times:
            delay = start + at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            t = threading.Thread(target=self.place, name="bench-call", daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
        return self.results

    def closed_loop(self, calls: int, concurrency: int) -> list[CallResult]:
        """``concurrency`` callers placing calls back to back until ``calls`` are done (the soak)."""
        counter = iter(range(calls))
        lock = threading.Lock()

        def caller() -> None:
            while True:
                with lock:
                    if next(counter, None) is None:
                        return
                self.place()

        threads = [threading.Thread(target=caller, daemon=True) for _ in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return self.results


def fetch_server_speech(target, results: list[CallResult]) -> int:
    """Each call's speech details from its record (``/api/calls/<sid>``); how many were found."""
    found = 0
    for r in results:
        if not r.sid:
            continue
        try:
            resp = target.api("GET", f"/api/calls/{r.sid}")
        except Exception:
            continue
        if resp.status_code == 200:
            r.server_speech = (resp.json().get("call") or {}).get("speech") or {}
            found += bool(r.server_speech)
    return found


def report(results: list[CallResult], elapsed_s: float, guard_s: float, speed: float = 1.0,
           settled_guard_s: float | None = None) -> dict:
    """The figures of a run (see the module docstring for what each one measures).

    At ``speed`` N the silence guard (call time) passes in 1/N of the wall time. A turn the
    server ended on the shorter guard (its record says ``settled``; only a call's last turn
    can be: a settled turn routes) waited ``settled_guard_s`` of silence, not ``guard_s``."""
    ok = [r for r in results if r.ok]
    kinds: dict[str, list[float]] = {}
    for r in results:
        for kind, values in r.latencies.items():
            kinds.setdefault(kind, []).extend(values)
    to_dial = [r.timings["speech_end_to_dial_ms"] for r in results if "speech_end_to_dial_ms" in r.timings]
    close_to_dial = [r.timings["stream_close_to_dial_ms"] for r in results if "stream_close_to_dial_ms" in r.timings]
    guard_ms = guard_s * 1000 / speed if speed > 0 else 0.0
    short_ms = (settled_guard_s if settled_guard_s is not None else guard_s) * 1000 / speed if speed > 0 else 0.0

    def waited_ms(r: CallResult, last: bool) -> float:
        return short_ms if last and r.server_speech.get("settled") else guard_ms

    lag = [s["speech_end_to_close_ms"] - waited_ms(r, i == len(r.streams) - 1) for r in results
           for i, s in enumerate(r.streams) if s.get("speech_end_to_close_ms") is not None]
    server_lag = [r.server_speech["decode_latency_ms"] - waited_ms(r, True) for r in results
                  if r.server_speech.get("outcome") == "speech" and r.server_speech.get("decode_latency_ms") is not None]
    # how far behind the caller's real time the server read (and decoded) the stream, at worst
    read_lag = [r.server_speech["read_lag_max_ms"] / 1000 for r in results
                if r.server_speech.get("read_lag_max_ms") is not None]
    beyond = [r.timings["speech_end_to_dial_ms"] - waited_ms(r, True) for r in results
              if "speech_end_to_dial_ms" in r.timings]
    outcomes: dict[str, int] = {}
    for r in results:
        key = "talked to an agent" if (r.outcome or "").startswith("talked to") else r.outcome
        outcomes[key] = outcomes.get(key, 0) + 1
    errors = [f"{r.sid or '?'}: {e}" for r in results for e in r.errors]
    span = max((r.ended_s for r in results), default=0) - min((r.started_s for r in results), default=0)
    return {
        "calls": len(results),
        "completed": len(ok),
        "calls_with_errors": len(results) - len(ok),
        "errors": errors[:20],
        "error_count": len(errors),
        "outcomes": outcomes,
        "elapsed_s": round(elapsed_s, 2),
        "calls_per_minute": round(len(ok) / elapsed_s * 60, 2) if elapsed_s > 0 else None,
        "busy_span_s": round(span, 2),
        "webhook_ms": {kind: summary(values, 2) for kind, values in sorted(kinds.items())},
        "speech_end_to_dial_ms": summary(to_dial),
        "speech_end_to_dial_beyond_guard_ms": summary(beyond),
        "settled_turns": sum(1 for r in results if r.server_speech.get("settled")),
        "stream_close_to_dial_ms": summary(close_to_dial),
        "recognizer_lag_s": summary([v / 1000 for v in lag], 3),
        "server_decode_lag_s": summary([v / 1000 for v in server_lag], 3),
        "server_read_lag_max_s": summary(read_lag, 3),
        "silence_guard_s": guard_s,
        "silence_guard_wall_s": round(guard_ms / 1000, 3),
        "settled_guard_wall_s": round(short_ms / 1000, 3),
        "speed": speed,
    }
