"""The speech engine: one loaded Vosk model per language shared by every call, one listener per call.

What vosk-api's source and issues say, and how this module follows it:

- A ``vosk.Model`` is read-only after loading and may be shared by any number of threads
  (maintainers in vosk-api #402, #877, #1651; vosk-server does it). It is loaded once per
  process, at start-up (:func:`load_speech`), never on a call's path.
- A ``KaldiRecognizer`` must never be shared (#606: SIGSEGV when it is). Each call gets
  its own :class:`Listener` holding its own recognizer; it is cheap to create and is
  dropped (freed) as soon as the utterance is final.
- Kaldi's fatal errors abort the whole process instead of raising. #481 is a live Twilio
  stream killed that way (``AcceptWaveform`` after the input was finished, also #52).
  A listener therefore never touches its recognizer after ``FinalResult``: every call
  into it is behind one lock and a ``closed`` flag, so a late frame or a second
  ``finish`` from another thread is a no-op.
- The cffi binding releases the GIL during ``AcceptWaveform``, so threads decode in
  parallel; one stream uses at most one core. A semaphore (``asr.max_concurrent_decoders``,
  0 = the number of cores) keeps more decoders than cores from thrashing each other.
- Resident memory grows a little with use through Kaldi's caches (#209, #526); the
  benchmark (``python -m ivr.asr.bench``) measures per-call growth over 200 calls.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field

from ivr.asr.audio import TWILIO_RATE, Resampler, level_dbfs, mulaw_to_pcm16
from ivr.asr.endpoint import OUTCOMES, Endpointer, EndpointRules
from ivr.asr.models import ModelError, Store, resolve

log = logging.getLogger(__name__)

PARTIAL_EVERY_S = 0.1  # how often (audio time) to ask for a partial hypothesis


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

    def to_dict(self) -> dict:
        return asdict(self)


def _words(result: dict) -> list[Word]:
    return [Word(w["word"], round(float(w.get("conf", 0.0)), 3), round(float(w["start"]), 3), round(float(w["end"]), 3))
            for w in result.get("result", []) if "word" in w]


class Listener:
    """Listens to one call's caller until the end of their utterance. One thread feeds it."""

    def __init__(self, model, model_name: str, sample_rate: int, rules: EndpointRules, decoders: threading.Semaphore):
        import vosk

        self.model_name = model_name
        self._rec = vosk.KaldiRecognizer(model, float(sample_rate))
        self._rec.SetWords(True)
        self._resample = Resampler(TWILIO_RATE, sample_rate)
        self._decoders = decoders
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

    @property
    def finished(self) -> bool:
        return self.utterance is not None

    @property
    def audio_s(self) -> float:
        return self._endpointer.audio_s

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
            with self._decoders:
                ended = self._rec.AcceptWaveform(pcm.tobytes()) if len(pcm) else False
                ep.on_frame(len(payload) / TWILIO_RATE, level_dbfs(line))
                self._arrivals.append((ep.audio_s, arrived))
                if ended:
                    events.append(self._take_segment(json.loads(self._rec.Result())))
                elif ep.audio_s >= self._next_partial_at:
                    self._next_partial_at = ep.audio_s + PARTIAL_EVERY_S
                    text = json.loads(self._rec.PartialResult()).get("partial", "")
                    ep.on_partial(text)
                    if text:
                        self._last_partial = text
                    if text != self._partial:
                        self._partial = text
                        events.append(SpeechEvent("partial", text, round(ep.audio_s, 3)))
            outcome = ep.decide()
            if outcome is not None:
                self._close(outcome, arrived)
                events.append(SpeechEvent("final", self.utterance.text, round(ep.audio_s, 3)))
            return events

    def finish(self, reason: str = "stream_end") -> Utterance:
        """The utterance so far (idempotent); closes the recognizer."""
        with self._lock:
            if self.utterance is None:
                self._close(reason if reason in OUTCOMES else "stream_end", time.perf_counter())
            return self.utterance

    def _take_segment(self, result: dict) -> SpeechEvent:
        words = _words(result)
        text = result.get("text", "").strip()
        if text:
            self._segments.append(text)
            self._words.extend(words)
            self._last_partial = text
        self._endpointer.on_segment(text, words[-1].end if words else None)
        self._partial = ""
        return SpeechEvent("final", text, round(self._endpointer.audio_s, 3))

    def _close(self, outcome: str, trigger_wall: float) -> None:
        rec, self._rec = self._rec, None
        if rec is not None:
            with self._decoders:
                if outcome != "speech":
                    # The resampler's last few ms; after a "speech" endpoint they are silence.
                    tail = self._resample.flush()
                    if len(tail) and rec.AcceptWaveform(tail.tobytes()):
                        self._take_segment(json.loads(rec.Result()))
                self._take_segment(json.loads(rec.FinalResult()))
            del rec  # frees the recognizer now, not whenever the listener is collected
        done = time.perf_counter()
        words = self._words
        speech_end = self._endpointer.speech_end_s
        if speech_end is None and words:
            speech_end = words[-1].end
        self.utterance = Utterance(
            outcome=outcome,
            text=" ".join(self._segments),
            words=list(words),
            confidence=round(sum(w.conf for w in words) / len(words), 3) if words else 0.0,
            audio_s=round(self._endpointer.audio_s, 3),
            speech_end_s=round(speech_end, 3) if speech_end is not None else None,
            decode_latency_ms=round((done - self._arrival_of(speech_end, trigger_wall)) * 1000, 1),
            partial=self._last_partial,
            finalize_ms=round((done - trigger_wall) * 1000, 1),
            model=self.model_name,
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
                 problems: dict[str, str] | None = None):
        self.models = models
        self.problems = problems or {}
        self.rules = _rules(endpointing) if endpointing is not None else EndpointRules()
        self.max_decoders = max_decoders or _cores()
        self._decoders = threading.BoundedSemaphore(self.max_decoders)

    def ready(self, model_name: str) -> bool:
        return model_name in self.models

    def listener(self, model_name: str, endpointing=None) -> Listener:
        loaded = self.models.get(model_name)
        if loaded is None:
            reason = self.problems.get(model_name, "it is not used by any hotline in config.yaml")
            raise ModelError(f"speech model {model_name} is not loaded: {reason}")
        rules = _rules(endpointing) if endpointing is not None else self.rules
        return Listener(loaded.model, model_name, loaded.sample_rate, rules, self._decoders)

    def close(self) -> None:
        self.models = {}


def _rules(endpointing) -> EndpointRules:
    return endpointing if isinstance(endpointing, EndpointRules) else EndpointRules.from_config(endpointing)


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


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
    return SpeechEngine(models, config.asr.endpointing, config.asr.max_concurrent_decoders, problems)
