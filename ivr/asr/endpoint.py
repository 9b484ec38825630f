"""When has the caller finished? End-of-utterance rules on *audio* time, as pure logic.

The recognizer reports what it heard; :class:`Endpointer` decides from those reports and
the amount of audio received (never the wall clock, so an accelerated replay ends
exactly where a live call would):

- ``speech``     – words were recognised and then ``silence_after_speech_s`` of audio
                   passed after the last word's end with nothing new being said;
- ``no_speech``  – ``no_speech_timeout_s`` of audio and not one word yet;
- ``max_length`` – ``max_listen_s`` of audio, whatever is going on.

The last word's end comes from Kaldi's own endpoint (``AcceptWaveform`` returning true
after a stretch of trailing silence; 0.5 s for the small models' rule 2), which gives
word timings; the guard then waits out the rest of ``silence_after_speech_s``. So a guard
shorter than the model's own rule acts like the model's rule.
"""

from __future__ import annotations

from dataclasses import dataclass

OUTCOMES = ("speech", "no_speech", "max_length", "stream_end")


@dataclass(frozen=True)
class EndpointRules:
    silence_after_speech_s: float = 0.7
    max_listen_s: float = 12.0
    no_speech_timeout_s: float = 5.0

    @classmethod
    def from_config(cls, endpointing) -> "EndpointRules":
        return cls(endpointing.silence_after_speech_s, endpointing.max_listen_s, endpointing.no_speech_timeout_s)


@dataclass
class Endpointer:
    """The listening state of one utterance; feed it what the recognizer says."""

    rules: EndpointRules
    audio_s: float = 0.0            # audio received so far
    heard_words: bool = False       # a final segment with words has arrived
    speaking: bool = False          # the current partial hypothesis is not empty
    speech_started_s: float | None = None
    speech_end_s: float | None = None  # end of the last recognised word
    outcome: str | None = None

    def on_audio(self, seconds: float) -> None:
        self.audio_s += seconds

    def on_partial(self, text: str) -> None:
        self.speaking = bool(text.strip())
        if self.speaking and self.speech_started_s is None:
            self.speech_started_s = self.audio_s

    def on_segment(self, text: str, last_word_end_s: float | None) -> None:
        """Kaldi closed a segment (its own endpoint): the words so far are final."""
        self.speaking = False
        if not text.strip():
            return
        self.heard_words = True
        if self.speech_started_s is None:
            self.speech_started_s = self.audio_s
        end = last_word_end_s if last_word_end_s is not None else self.audio_s
        self.speech_end_s = max(end, self.speech_end_s or 0.0)

    def decide(self) -> str | None:
        """The outcome once the utterance is over, else None (keep listening)."""
        if self.outcome is not None:
            return self.outcome
        r = self.rules
        if self.heard_words and not self.speaking and self.speech_end_s is not None \
                and self.audio_s - self.speech_end_s >= r.silence_after_speech_s:
            self.outcome = "speech"
        elif self.audio_s >= r.max_listen_s:
            self.outcome = "max_length"
        elif self.speech_started_s is None and self.audio_s >= r.no_speech_timeout_s:
            self.outcome = "no_speech"
        return self.outcome
