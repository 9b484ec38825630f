"""When has the caller finished? End-of-utterance rules on *audio* time, as pure logic.

The recognizer reports what it heard; :class:`Endpointer` decides from those reports, the
loudness of each frame and the amount of audio received (never the wall clock, so an
accelerated replay ends exactly where a live call would):

- ``speech``     – words were recognised, and then ``silence_after_speech_s`` of audio
                   passed without the caller's voice;
- ``no_speech``  – ``no_speech_timeout_s`` of audio and not one word yet;
- ``max_length`` – ``max_listen_s`` of audio, whatever is going on.

- ``speech``, sooner – the words so far already *settle* the category (the listener's
                   ``settles`` check: the classifier is confident on them), and then
                   ``settled_silence_s`` (default 0.3 s) passed without the caller's voice:
                   a caller who has said what they need is not kept waiting for the full
                   guard. A later partial that unsettles it restores the full guard.

"Without the caller's voice" has two witnesses, and either one ends the utterance:

1. the frame level: a frame is voice when it is clearly above the line's own noise floor
   (:class:`VoiceActivity`); exact to 20 ms, and not delayed by the decoder;
2. the recognizer: Kaldi closed a segment (its endpoint rules) and no new words came, for
   ``silence_after_speech_s`` after the segment's last word. This covers steady loud noise,
   where every frame looks like voice.

Why not the recognizer's partial hypotheses alone: the Korean model's decoder runs
0.3–0.5 s behind the audio and its partial word timings (``SetPartialWords``) lag by
more than a second, which would add that much to every caller's wait.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OUTCOMES = ("speech", "no_speech", "max_length", "stream_end")


@dataclass(frozen=True)
class EndpointRules:
    silence_after_speech_s: float = 0.7
    max_listen_s: float = 12.0
    no_speech_timeout_s: float = 5.0
    settled_silence_s: float = 0.3  # 0 = off: always the full guard

    @classmethod
    def from_config(cls, endpointing) -> "EndpointRules":
        return cls(endpointing.silence_after_speech_s, endpointing.max_listen_s, endpointing.no_speech_timeout_s,
                   getattr(endpointing, "settled_silence_s", cls.settled_silence_s))

    def guard(self, settled: bool) -> float:
        """Silence after speech that ends the utterance."""
        if settled and self.settled_silence_s > 0:
            return min(self.silence_after_speech_s, self.settled_silence_s)
        return self.silence_after_speech_s


@dataclass
class VoiceActivity:
    """Frame-level voice detector over a noise floor that adapts to the line.

    The floor follows quiet frames down at once and drifts up slowly (``rise_db`` per
    frame), so steady noise becomes the floor while a sentence does not.
    """

    margin_db: float = 12.0     # voice is this far above the floor...
    min_voice_db: float = -50.0  # ...and at least this loud (dBFS)
    rise_db: float = 0.05       # floor drift per frame (2.5 dB/s at 20 ms frames)
    floor_db: float | None = None

    def update(self, level_db: float) -> bool:
        if self.floor_db is None or level_db < self.floor_db:
            self.floor_db = level_db
        else:
            self.floor_db = min(level_db, self.floor_db + self.rise_db)
        return level_db >= max(self.floor_db + self.margin_db, self.min_voice_db)


@dataclass
class Endpointer:
    """The listening state of one utterance; feed it frames and what the recognizer says."""

    rules: EndpointRules
    vad: VoiceActivity = field(default_factory=VoiceActivity)
    audio_us: int = 0                # audio received so far, in µs (no float drift over many frames)
    heard_words: bool = False        # the recognizer has produced words (partial or final)
    speech_started_s: float | None = None
    voice_end_s: float | None = None     # end of the last frame that was voice
    segment_end_s: float | None = None   # last word of the last closed segment, if none came since
    speech_end_s: float | None = None    # end of speech as decided
    settled: bool = False            # the words so far settle the category (set by the listener)
    outcome: str | None = None
    early: bool = False              # ended on the shorter, settled guard

    @property
    def audio_s(self) -> float:
        return self.audio_us / 1e6

    def on_frame(self, seconds: float, level_db: float) -> None:
        self.audio_us += round(seconds * 1e6)
        if self.vad.update(level_db):
            self.voice_end_s = self.audio_s

    def on_partial(self, text: str) -> None:
        if text.strip():
            self._heard()
            self.segment_end_s = None  # the caller is saying something new

    def on_segment(self, text: str, last_word_end_s: float | None) -> None:
        """Kaldi closed a segment at its own endpoint: the words so far are final."""
        if text.strip():
            self._heard()
            self.segment_end_s = last_word_end_s if last_word_end_s is not None else self.audio_s

    def _heard(self) -> None:
        self.heard_words = True
        if self.speech_started_s is None:
            self.speech_started_s = self.audio_s

    def decide(self) -> str | None:
        """The outcome once the utterance is over, else None (keep listening)."""
        if self.outcome is not None:
            return self.outcome
        r = self.rules
        if self.heard_words:
            guard = r.guard(self.settled)
            ends = [e for e in (self.voice_end_s, self.segment_end_s)
                    if e is not None and self.audio_s - e >= guard]
            if ends:
                self.speech_end_s = max(ends)
                self.outcome = "speech"
                self.early = guard < r.silence_after_speech_s
                return self.outcome
        if self.audio_s >= r.max_listen_s:
            self.outcome = "max_length"
        elif not self.heard_words and self.audio_s >= r.no_speech_timeout_s:
            self.outcome = "no_speech"
        if self.outcome is not None:
            self.speech_end_s = self.voice_end_s if self.heard_words else None
        return self.outcome
