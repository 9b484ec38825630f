"""The pure parts of the speech path: μ-law decoding, resampling, levels, and the endpoint rules."""

from __future__ import annotations

import numpy as np

from ivr.asr.audio import MULAW_TO_PCM16, Resampler, level_dbfs, mulaw_to_pcm16, pcm16_to_mulaw
from ivr.asr.endpoint import Endpointer, EndpointRules, VoiceActivity

RULES = EndpointRules(0.7, 12.0, 5.0)
LOUD, QUIET = -20.0, -80.0


def test_mulaw_table_matches_g711_reference_points():
    assert MULAW_TO_PCM16[0xFF] == 0 and MULAW_TO_PCM16[0x7F] == 0
    assert MULAW_TO_PCM16[0x00] == -32124 and MULAW_TO_PCM16[0x80] == 32124
    assert MULAW_TO_PCM16[0xFE] == 8 and MULAW_TO_PCM16[0x7E] == -8


def test_mulaw_round_trip_agrees_with_the_telephony_encoder():
    from ivr.telephony.wavstream import encode_mulaw

    pcm = np.linspace(-30000, 30000, 4001).astype(np.int16)
    ours, theirs = pcm16_to_mulaw(pcm), encode_mulaw(pcm)
    back = mulaw_to_pcm16(ours).astype(np.int32)
    assert np.all(np.abs(back - pcm) <= np.maximum(16, np.abs(pcm.astype(np.int32)) // 16))
    assert np.mean(np.frombuffer(ours, np.uint8) == np.frombuffer(theirs, np.uint8)) > 0.99


def test_streaming_resampler_doubles_the_rate_and_keeps_a_tone():
    t = np.arange(8000) / 8000
    tone = (10000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    rs = Resampler(8000, 16000)
    out = np.concatenate([rs(tone[i:i + 160]) for i in range(0, len(tone), 160)] + [rs.flush()])
    assert abs(len(out) - 16000) <= 2
    spectrum = np.abs(np.fft.rfft(out[2000:14000].astype(np.float64)))
    peak_hz = np.argmax(spectrum) * 16000 / 12000
    assert abs(peak_hz - 1000) < 5


def test_same_rate_needs_no_resampling():
    pcm = np.arange(160, dtype=np.int16)
    assert Resampler(8000, 8000)(pcm) is pcm


def test_levels():
    assert level_dbfs(np.zeros(160, np.int16)) == -120.0
    full = (32767 * np.sin(np.linspace(0, 20 * np.pi, 1600))).astype(np.int16)
    assert abs(level_dbfs(full) + 3.0) < 0.2


def run(ep: Endpointer, seconds: float, level: float, text: str | None = None) -> str | None:
    for _ in range(round(seconds / 0.02)):
        ep.on_frame(0.02, level)
        if text is not None:
            ep.on_partial(text)
        if ep.decide():
            return ep.outcome
    return None


def test_speech_ends_one_guard_after_the_voice():
    ep = Endpointer(RULES)
    assert run(ep, 0.5, QUIET) is None
    assert run(ep, 1.0, LOUD, "결제") is None
    assert run(ep, 0.68, QUIET) is None
    assert run(ep, 0.04, QUIET) == "speech"
    assert abs(ep.speech_end_s - 1.5) < 1e-6


def test_a_short_pause_does_not_end_the_utterance():
    ep = Endpointer(RULES)
    run(ep, 1.0, LOUD, "결제")
    assert run(ep, 0.5, QUIET) is None
    assert run(ep, 1.0, LOUD, "결제 안") is None
    assert run(ep, 0.7, QUIET) == "speech" and abs(ep.speech_end_s - 2.5) < 1e-6


def test_words_that_settle_the_category_end_the_utterance_on_the_shorter_guard():
    ep = Endpointer(RULES)
    run(ep, 0.5, QUIET)
    run(ep, 1.0, LOUD, "결제가 안 돼요")
    ep.settled = True
    assert run(ep, 0.28, QUIET) is None
    assert run(ep, 0.04, QUIET) == "speech" and ep.early
    assert abs(ep.speech_end_s - 1.5) < 1e-6


def test_unsettled_words_keep_the_full_guard_and_settling_can_be_switched_off():
    ep = Endpointer(RULES)
    run(ep, 0.5, QUIET)
    run(ep, 1.0, LOUD, "음")
    ep.settled = True
    ep.settled = False  # a later partial unsettled it
    assert run(ep, 0.6, QUIET) is None
    assert run(ep, 0.2, QUIET) == "speech" and not ep.early
    off = Endpointer(EndpointRules(0.7, 12.0, 5.0, settled_silence_s=0))
    run(off, 0.5, QUIET)
    run(off, 1.0, LOUD, "결제가 안 돼요")
    off.settled = True
    assert run(off, 0.6, QUIET) is None
    assert run(off, 0.2, QUIET) == "speech" and not off.early


def test_voice_without_words_is_not_speech_and_times_out():
    ep = Endpointer(RULES)
    assert run(ep, 6.0, LOUD, "") == "no_speech"
    assert abs(ep.audio_s - 5.0) < 1e-6 and ep.speech_end_s is None


def test_words_before_the_timeout_keep_listening():
    ep = Endpointer(RULES)
    run(ep, 4.9, QUIET)
    assert run(ep, 0.3, LOUD, "네") is None


def test_endless_talking_ends_at_max_listen():
    ep = Endpointer(RULES)
    assert run(ep, 20.0, LOUD, "말") == "max_length"
    assert abs(ep.audio_s - 12.0) < 1e-6


def test_steady_loud_noise_ends_by_the_recognizers_segment():
    ep = Endpointer(RULES)
    run(ep, 2.0, LOUD, "결제")
    ep.on_segment("결제 안 돼요", last_word_end_s=1.9)
    assert run(ep, 0.58, LOUD) is None     # the level never drops, but no new words come
    assert run(ep, 0.04, LOUD) == "speech"
    assert abs(ep.speech_end_s - 1.9) < 1e-6


def test_outcome_is_final_once_decided():
    ep = Endpointer(RULES)
    run(ep, 6.0, QUIET)
    ep.on_partial("늦은 말")
    assert ep.decide() == "no_speech"


def test_noise_floor_follows_steady_noise_but_not_speech():
    vad = VoiceActivity()
    assert not any(vad.update(-40.0) for _ in range(50))  # steady noise becomes the floor
    assert vad.update(-20.0)                              # speech 20 dB above it is voice
    assert not vad.update(-45.0)
