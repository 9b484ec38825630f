"""The speech engine: one loaded Vosk model per language shared by every call, one listener per call.

What vosk-api's source and issues say, and how this module follows it:

- A ``vosk.Model`` is read-only after loading and may be shared by any number of threads
  (maintainers in vosk-api #402, #877, #1651; vosk-server does it). It is loaded once per
  process, at start-up (:func:`load_speech`), never on a call's path.
- A ``KaldiRecognizer`` must never be shared (#606: SIGSEGV when it is). Each call gets
  its own :class:`Listener` holding a recognizer that no other call touches until the
  utterance is final.
- Recognizers are *reused*, one call after another (:class:`RecognizerPool`). The Korean
  model decodes on a graph composed on the fly (``HCLr.fst`` ∘ ``Gr.fst``, lookahead), and
  each recognizer composes and caches the part of that graph its audio reaches. A fresh
  recognizer starts with an empty cache, so it costs 0.31–0.47 CPU-seconds per second of
  audio over a call's first seconds, against 0.13 for one that has decoded a dozen other
  calls (measured on 8 s of speech it had not heard). Calls are short, so fresh
  recognizers would pay that price all the time: this, not Python, was where the capacity
  went. Feeding a recognizer after ``FinalResult`` is safe in the vosk we require
  (>= 0.3.45, pyproject.toml): its next ``AcceptWaveform`` starts a new utterance with a
  new feature pipeline and decoder and keeps only the graph. (The aborts of #52, #146 and
  #481 below were vosk 0.3.3–0.3.17, which kept the finished feature pipeline.) The pool
  only takes back a recognizer whose ``FinalResult`` was read in the running state (see
  ``Listener._close``). Its word times then count from the recognizer's first sample,
  which the pool remembers and subtracts.
- That warmth is memory, and it is each recognizer's own: on the Korean model one
  recognizer held 30 MB when made, about 130 MB after 20 calls, 165 MB after 100, 180 MB
  after 200 and 190 MB after 460 (fixture calls; still growing by about 2 MB per 100
  calls). Deleting it gives all of it back, but only with ``malloc_trim``: glibc kept 80 %
  of it for the process otherwise. So a worker's memory is the pool's size (the most
  calls it held at once, plus those in their final pass) times that, and creeps up with
  calls for hundreds of calls. The pool therefore retires a recognizer after
  ``asr.recognizer_max_calls`` calls (250, plus up to a quarter more so a pool made at
  once does not go cold at once), frees it and trims the heap; a fresh one takes its
  place. That bounds the memory for good, at the price of one cold start per 250 calls.
- Kaldi's fatal errors abort the whole process instead of raising. #481 is a live Twilio
  stream killed that way (``AcceptWaveform`` after the input was finished, also #52).
  A listener therefore never touches its recognizer after ``FinalResult`` (only the next
  call, through the pool): every call
  into it is behind one lock and a ``closed`` flag, so a late frame or a second
  ``finish`` from another thread is a no-op.
- The cffi binding releases the GIL around every C call (measured: a pure-Python thread
  keeps running beside a 4 s ``AcceptWaveform``), so calls decode in parallel, each in the
  thread that reads its WebSocket; one stream uses at most one core.
- Where the CPU goes (cProfile of one stream, 20 ms frames): Kaldi's ``AcceptWaveform`` is
  97 %; μ-law, resampling, frame levels, the endpointer and JSON together about 2 %;
  ``PartialResult`` under 1 % (0.2 ms a call). So the calls a worker holds are set by
  cores / Kaldi's cost per audio second, which recognizer reuse (above) cuts by half or
  more, not by our Python. Feeding Kaldi larger chunks changes nothing measurable (20, 100
  and 200 ms chunks all gave 0.26–0.30 on one stream): the soxr stream already hands it
  ~104 ms blocks. Decoder settings (beam 10 → 8: −33 % CPU; max-active 3000 → 1000:
  −19 %) are left as the model ships them: their effect on accuracy cannot be measured
  here (the espeak-ng fixtures are recognised at CER ≈ 0.97 whatever the settings, and
  vosk is not deterministic run to run: the same settings twice gave the same transcript
  for only 7 of 13 files).
- No decoder semaphore by default (``asr.max_concurrent_decoders: 0``). Limiting decoders
  to one per core bought nothing: the CPU per audio second was the same with 6 decoders on
  2 cores as with 2 (0.36 either way, 3 runs each). It can only cost: a permit holder that
  the kernel deschedules (for another process) blocks every other call while a core may be
  idle, waiters wake in no fixed order, and on a shared machine a process with 2 runnable
  decoders gets a smaller share of the CPU than one with 6. A positive value still caps
  simultaneous decoders at that number.
- Resident memory grows a little with use through Kaldi's caches (#209, #526); the
  benchmark (``python -m ivr.asr.bench``) measures per-call growth over 200 calls.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from ivr.asr.audio import TWILIO_RATE, Resampler, level_dbfs, mulaw_to_pcm16
from ivr.asr.endpoint import OUTCOMES, Endpointer, EndpointRules
from ivr.asr.models import ModelError, Store, resolve

log = logging.getLogger(__name__)

PARTIAL_EVERY_S = 0.1  # at most this often (audio time), and only after new audio was decoded
POOL_MAX_IDLE = 16     # idle recognizers kept per model (each 150-200 MB once warm)
POOL_WAIT_S = 0.25     # a new call waits this long for a recognizer in its final pass (RecognizerPool)


@dataclass
class Word:
    word: str
    conf: float
    start: float  # seconds of call audio since the listener started
    end: float


@dataclass
class SpeechEvent:
    kind: str   # "partial" | "final"
    text: str
    at_s: float  # audio time when it was produced


@dataclass
class Utterance:
    outcome: str  # "speech" | "no_speech" | "max_length" | "stream_end"
    text: str
    words: list[Word] = field(default_factory=list)
    confidence: float = 0.0        # mean word confidence (0 without words)
    audio_s: float = 0.0           # audio received
    speech_end_s: float | None = None  # end of the last recognised word
    decode_latency_ms: float = 0.0  # wall time from the arrival of the end of speech to the final text
    partial: str = ""              # the last partial hypothesis heard
    finalize_ms: float = 0.0       # wall time from the frame that ended listening to the final text
    model: str = ""
    settled: bool = False          # ended on the shorter guard: the words had settled the category
    # A settled utterance is decided on the words heard so far, without waiting for the
    # recognizer's final pass; that pass runs after the decision (finish()), and its text
    # and words replace these. final_ms: how long it took, off the caller's wait.
    final_ms: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def _words(result: dict, offset_s: float = 0.0) -> list[Word]:
    return [Word(w["word"], round(float(w.get("conf", 0.0)), 3), round(float(w["start"]) - offset_s, 3),
                 round(float(w["end"]) - offset_s, 3))
            for w in result.get("result", []) if "word" in w]


class PooledRecognizer:
    """A recognizer and the audio it has consumed in earlier calls (its word times count from there)."""

    def __init__(self, model, sample_rate: int, max_calls: int = 0):
        import vosk

        self.rec = vosk.KaldiRecognizer(model, float(sample_rate))
        self.rec.SetWords(True)
        self.sample_rate = sample_rate
        self.samples_before = 0  # samples fed in earlier calls
        self.calls = 0
        # retired after this many calls (0 = never); each its own, so a pool made at once
        # is not all cold again at once
        self.max_calls = max_calls + random.randrange(max_calls // 4 + 1) if max_calls else 0

    @property
    def offset_s(self) -> float:
        return self.samples_before / self.sample_rate


class RecognizerPool:
    """Idle recognizers of one model, handed to one call at a time, warmest first.

    A recognizer whose call was decided early is still running its final pass (tens of
    ms, more on a busy machine) when the next call may already want one. Rather than make
    a new, cold one then (2-3x the CPU over its first calls, and tens of MB more for as long
    as the process lives), a call waits up to ``wait_s`` for it: the stream's first frames
    (the caller has only just heard the greeting) wait in the socket meanwhile."""

    def __init__(self, model, sample_rate: int, max_idle: int = POOL_MAX_IDLE, wait_s: float = POOL_WAIT_S,
                 max_calls: int = 0):
        """``max_calls``: retire a recognizer after about this many calls (0 = never; the
        service takes it from ``asr.recognizer_max_calls``)."""
        self.model, self.sample_rate, self.max_idle, self.wait_s = model, sample_rate, max_idle, wait_s
        self.max_calls = max_calls
        self._idle: list[PooledRecognizer] = []
        self._lock = threading.Condition()
        self.created = 0
        self.retired = 0  # let go: after max_calls, or beyond max_idle
        self.finishing = 0  # recognizers in their final pass, back in the pool soon

    def acquire(self) -> PooledRecognizer:
        with self._lock:
            waited = 0.0
            if not self._idle and self.finishing:
                started = time.perf_counter()
                self._lock.wait_for(lambda: self._idle or not self.finishing, timeout=self.wait_s)
                waited = time.perf_counter() - started
            if self._idle:
                return self._idle.pop()
            in_use, finishing = self.in_use, self.finishing
            self.created += 1
            made = self.created
        if made > 1:  # the pool grows: each new recognizer is cold and stays in memory
            log.info("speech recognizer made", extra={"made": made, "in_use": in_use, "finishing": finishing,
                                                      "waited_ms": round(waited * 1000, 1)})
        return PooledRecognizer(self.model, self.sample_rate, self.max_calls)

    @property
    def alive(self) -> int:
        """Recognizers this pool made and has not let go (idle, in a call, or in a final pass)."""
        return self.created - self.retired

    @property
    def in_use(self) -> int:
        """Recognizers in calls (finishing ones included): alive and not idle."""
        return self.alive - len(self._idle)

    def finishing_started(self) -> None:
        """A recognizer's call is decided; its final pass (then :meth:`release`) follows."""
        with self._lock:
            self.finishing += 1

    def lost(self, finishing: bool = False) -> None:
        """A recognizer's final pass failed: it is not coming back (``finishing``: it was
        announced by :meth:`finishing_started`, so nobody waits for it any more)."""
        with self._lock:
            if finishing:
                self.finishing = max(0, self.finishing - 1)
            self.retired += 1
            self._lock.notify_all()

    def release(self, pooled: PooledRecognizer, samples: int, finishing: bool = False) -> None:
        """Take back a recognizer whose ``FinalResult`` has been read; ``samples`` it consumed in that call.

        ``finishing``: it was announced by :meth:`finishing_started`."""
        pooled.samples_before += samples
        pooled.calls += 1
        worn = bool(pooled.max_calls) and pooled.calls >= pooled.max_calls
        with self._lock:
            if finishing:
                self.finishing = max(0, self.finishing - 1)
            keep = not worn and len(self._idle) < self.max_idle
            if keep:
                self._idle.append(pooled)
            else:
                self.retired += 1
            # a retired one wakes a waiter too: with one fewer finishing it makes its own
            self._lock.notify()
        if not keep:  # freeing and trimming take 10-30 ms: not on this call's path
            threading.Thread(target=_let_go, args=(pooled,), name="recognizer-let-go", daemon=True).start()

    @property
    def idle(self) -> int:
        return len(self._idle)

    def clear(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
            self.retired += len(idle)
        _let_go(*idle)


def _find_malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc only
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _find_malloc_trim()


def _let_go(*pooled: PooledRecognizer) -> None:
    """Free recognizers' decoders and graph caches now (a listener may outlive its own), and
    hand the memory back to the system: glibc keeps freed memory for the process otherwise,
    and a worker's resident size would stay at its peak."""
    for one in pooled:
        one.rec = None
    if pooled and _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class Listener:
    """Listens to one call's caller until the end of their utterance. One thread feeds it."""

    def __init__(self, pool: RecognizerPool, model_name: str, rules: EndpointRules,
                 decoders: threading.Semaphore | None = None, settles: Callable[[str], bool] | None = None):
        """``settles(text)``: do the words so far already decide the call (the classifier is
        confident)? Asked on each new partial; when yes, a shorter silence ends the utterance."""
        self.model_name = model_name
        self._settles = settles
        self.sample_rate = sample_rate = pool.sample_rate
        self._pool = pool
        self._pooled = pool.acquire()
        self._rec = self._pooled.rec
        self._resample = Resampler(TWILIO_RATE, sample_rate)
        self._decoders = decoders if decoders is not None else contextlib.nullcontext()
        self._decoded = 0  # model-rate samples the recognizer has consumed
        self._at_endpoint = False  # the last thing the recognizer did was close a segment (Result)
        self._padded = 0  # samples of silence fed after the caller's audio, to finish the recognizer
        self._lock = threading.Lock()
        self._endpointer = Endpointer(rules)
        self._segments: list[str] = []
        self._words: list[Word] = []
        self._partial = ""
        self._last_partial = ""
        self._next_partial_at = PARTIAL_EVERY_S
        # (audio time at the end of a chunk, wall time it arrived): enough to date the end
        # of speech however long the silence guard is.
        self._arrivals: deque[tuple[float, float]] = deque(maxlen=1000)
        self.utterance: Utterance | None = None
        self._final_pending = False  # decided early (settled); the recognizer's final pass still to run

    @property
    def finished(self) -> bool:
        return self.utterance is not None

    @property
    def final_pending(self) -> bool:
        """Decided early; :meth:`finish` still has the recognizer's final pass to run."""
        return self._final_pending

    @property
    def audio_s(self) -> float:
        """Audio received so far (seconds)."""
        return self._endpointer.audio_s

    @property
    def decoded_s(self) -> float:
        """Audio the recognizer has consumed so far (seconds): behind ``audio_s`` by what the
        resampler holds (up to ~0.2 s). The benchmark's lag is measured on this."""
        return self._decoded / self.sample_rate

    def feed_mulaw(self, payload: bytes) -> list[SpeechEvent]:
        """Feed raw 8 kHz μ-law bytes (any length); returns what the recognizer now says."""
        with self._lock:
            if self.utterance is not None or not payload:
                return []  # never feed a recognizer after its final result (vosk-api #481)
            arrived = time.perf_counter()
            line = mulaw_to_pcm16(payload)
            pcm = self._resample(line)
            ep = self._endpointer
            events: list[SpeechEvent] = []
            ep.on_frame(len(payload) / TWILIO_RATE, level_dbfs(line))
            self._arrivals.append((ep.audio_s, arrived))
            if len(pcm):  # the resampler hands out ~104 ms blocks: most frames decode nothing
                with self._decoders:
                    ended = self._rec.AcceptWaveform(pcm.tobytes())
                    self._decoded += len(pcm)
                    self._at_endpoint = bool(ended)
                    if ended:
                        events.append(self._take_segment(json.loads(self._rec.Result())))
                    elif ep.audio_s >= self._next_partial_at:
                        self._next_partial_at = ep.audio_s + PARTIAL_EVERY_S
                        text = json.loads(self._rec.PartialResult()).get("partial", "")
                        ep.on_partial(text)
                        if text:
                            self._last_partial = text
                        if self._settles is not None and text != self._partial:
                            self._settle(" ".join([*self._segments, text]))
                        if text != self._partial:
                            self._partial = text
                            events.append(SpeechEvent("partial", text, round(ep.audio_s, 3)))
            outcome = ep.decide()
            if outcome is not None:
                if outcome == "speech" and ep.early:
                    self._decide_early(arrived)
                else:
                    self._close(outcome, arrived)
                events.append(SpeechEvent("final", self.utterance.text, round(ep.audio_s, 3)))
            return events

    def _decide_early(self, trigger_wall: float) -> None:
        """The words so far settled the call: the utterance is what was heard, now.

        Kaldi's final pass (the audio's last frames, the lattice, word times) takes 35 ms on
        an idle core and hundreds when every core decodes other callers; the caller does not
        wait for it. It runs in :meth:`finish`, after the call flow has the utterance."""
        text = " ".join(t for t in [*self._segments, self._partial] if t).strip()
        self.utterance = self._utterance("speech", text, trigger_wall)
        self._final_pending = True
        self._pool.finishing_started()

    def _settle(self, text: str) -> None:
        try:
            self._endpointer.settled = bool(text.strip()) and bool(self._settles(text))
        except Exception:  # a failing check never stops listening; the full guard applies
            log.exception("settles check failed; keeping the full silence guard")
            self._endpointer.settled = False

    def finish(self, reason: str = "stream_end") -> Utterance:
        """The utterance so far (idempotent); closes the recognizer.

        After an early decision this runs the recognizer's final pass: the utterance then
        has the final text and words, and keeps the early decision's latencies."""
        with self._lock:
            if self.utterance is None:
                self._close(reason if reason in OUTCOMES else "stream_end", time.perf_counter())
            elif self._final_pending:
                early = self.utterance
                started = time.perf_counter()
                try:
                    self._finalize("speech")
                finally:
                    self._final_pending = False
                final = self._utterance("speech", " ".join(self._segments) or early.text, started)
                self.utterance = dataclasses.replace(
                    final, decode_latency_ms=early.decode_latency_ms, finalize_ms=early.finalize_ms,
                    final_ms=round((time.perf_counter() - started) * 1000, 1))
            return self.utterance

    def _take_segment(self, result: dict) -> SpeechEvent:
        words = _words(result, self._pooled.offset_s)
        text = result.get("text", "").strip()
        if text:
            self._segments.append(text)
            self._words.extend(words)
            self._last_partial = text
        self._endpointer.on_segment(text, words[-1].end if words else None)
        if self._settles is not None and text and self.utterance is None and self._rec is not None:
            self._settle(" ".join(self._segments))
        self._partial = ""
        return SpeechEvent("final", text, round(self._endpointer.audio_s, 3))

    def _close(self, outcome: str, trigger_wall: float) -> None:
        self._finalize(outcome)
        self.utterance = self._utterance(outcome, " ".join(self._segments), trigger_wall)

    def _finalize(self, outcome: str) -> None:
        """The recognizer's final pass; it then goes back to the pool."""
        rec, self._rec = self._rec, None
        if rec is None:
            return
        try:
            with self._decoders:
                # The resampler's last few ms; after a "speech" endpoint they are silence. And a
                # recognizer whose segment was just closed gets 10 ms of silence, so that
                # FinalResult really finishes it: only then does its next call start with a
                # fresh feature pipeline (otherwise vosk carries the old one over).
                if outcome != "speech":
                    tail = self._resample.flush()
                    if len(tail):
                        self._decoded += len(tail)
                        self._at_endpoint = bool(rec.AcceptWaveform(tail.tobytes()))
                        if self._at_endpoint:
                            self._take_segment(json.loads(rec.Result()))
                if self._at_endpoint:  # AcceptWaveform puts it back in the running state, whatever it returns
                    pad = np.zeros(self.sample_rate // 100, dtype=np.int16)
                    self._padded = len(pad)
                    rec.AcceptWaveform(pad.tobytes())
                self._take_segment(json.loads(rec.FinalResult()))
        except Exception:  # that recognizer is not coming back: the pool stops counting on it
            self._pool.lost(finishing=self._final_pending)
            raise
        del rec
        # ready for the next call, its graph cache warm
        self._pool.release(self._pooled, self._decoded + self._padded, finishing=self._final_pending)

    def _utterance(self, outcome: str, text: str, trigger_wall: float) -> Utterance:
        done = time.perf_counter()
        words = self._words
        speech_end = self._endpointer.speech_end_s
        if speech_end is None and words:
            speech_end = words[-1].end
        return Utterance(
            outcome=outcome,
            text=text,
            words=list(words),
            confidence=round(sum(w.conf for w in words) / len(words), 3) if words else 0.0,
            audio_s=round(self._endpointer.audio_s, 3),
            speech_end_s=round(speech_end, 3) if speech_end is not None else None,
            decode_latency_ms=round((done - self._arrival_of(speech_end, trigger_wall)) * 1000, 1),
            partial=self._last_partial,
            finalize_ms=round((done - trigger_wall) * 1000, 1),
            model=self.model_name,
            settled=self._endpointer.early,
        )

    def _arrival_of(self, audio_s: float | None, default: float) -> float:
        """Wall time at which the audio up to ``audio_s`` had arrived."""
        if audio_s is None:
            return default
        for end, wall in self._arrivals:
            if end >= audio_s:
                return wall
        return default


@dataclass
class LoadedModel:
    name: str
    language: str
    sample_rate: int
    path: str
    model: object
    load_s: float


class SpeechEngine:
    """The speech models of one worker process, loaded once and shared by all calls."""

    def __init__(self, models: dict[str, LoadedModel], endpointing=None, max_decoders: int = 0,
                 problems: dict[str, str] | None = None, recognizer_max_calls: int = 0):
        self.models = models
        self.problems = problems or {}
        self.rules = _rules(endpointing) if endpointing is not None else EndpointRules()
        self.max_decoders = max_decoders  # 0: no limit (see the module docstring)
        self._decoders = threading.BoundedSemaphore(max_decoders) if max_decoders else None
        self.pools = {name: RecognizerPool(m.model, m.sample_rate, max_calls=recognizer_max_calls)
                      for name, m in models.items()}

    def ready(self, model_name: str) -> bool:
        return model_name in self.models

    def listener(self, model_name: str, endpointing=None, settles: Callable[[str], bool] | None = None) -> Listener:
        loaded = self.models.get(model_name)
        if loaded is None:
            reason = self.problems.get(model_name, "it is not used by any hotline in config.yaml")
            raise ModelError(f"speech model {model_name} is not loaded: {reason}")
        rules = _rules(endpointing) if endpointing is not None else self.rules
        return Listener(self.pools[model_name], model_name, rules, self._decoders, settles)

    def close(self) -> None:
        for pool in self.pools.values():
            pool.clear()
        self.models = {}


def _rules(endpointing) -> EndpointRules:
    return endpointing if isinstance(endpointing, EndpointRules) else EndpointRules.from_config(endpointing)


def load_model(store: Store, name: str) -> LoadedModel:
    """Load one installed model (seconds, hundreds of MB): at start-up only."""
    import vosk

    vosk.SetLogLevel(-1)  # Kaldi logs every load step to stderr otherwise
    entry, path = resolve(store, name)
    started = time.perf_counter()
    try:
        model = vosk.Model(str(path))
    except Exception as exc:
        raise ModelError(f"speech model {name} at {path} could not be loaded ({exc}); "
                         f"check it with: ivr models verify, or reinstall: ivr models install {name}") from None
    return LoadedModel(name, entry.language, entry.sample_rate, str(path), model, time.perf_counter() - started)


def load_speech(config, only: list[str] | None = None) -> SpeechEngine:
    """Load every installed model that a hotline uses, once; raise if none can be loaded."""
    store = Store.from_config(config)
    wanted = only or list(dict.fromkeys(h.model for h in config.hotlines))
    models: dict[str, LoadedModel] = {}
    problems: dict[str, str] = {}
    for name in wanted:
        try:
            models[name] = load_model(store, name)
            log.info("speech model loaded", extra={"model": name, "seconds": round(models[name].load_s, 2)})
        except ModelError as exc:
            problems[name] = str(exc)
            log.warning("speech model not available", extra={"model": name, "reason": str(exc)})
    if not models:
        raise ModelError("no speech model could be loaded: " + "; ".join(problems.values()))
    return SpeechEngine(models, config.asr.endpointing, config.asr.max_concurrent_decoders, problems,
                        config.asr.recognizer_max_calls)
