"""The stand-in's caller audio: any WAV becomes 8 kHz μ-law in 160-byte frames; bad files say why."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from ivr.telephony import wavstream


def write_pcm(path, samples: np.ndarray, rate: int, channels: int = 1) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())


def sine(seconds: float, rate: int, hz: float = 440.0, amp: float = 10000.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * hz * t) * amp).astype(np.int16)


def dominant_hz(pcm: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    return float(np.fft.rfftfreq(len(pcm), 1 / rate)[np.argmax(spectrum)])


def test_pcm_16khz_stereo_becomes_8khz_mono_mulaw(tmp_path):
    left = sine(1.0, 16000, hz=440)
    stereo = np.stack([left, left], axis=1).reshape(-1)
    path = tmp_path / "stereo16k.wav"
    write_pcm(path, stereo, 16000, channels=2)
    mulaw = wavstream.read_wav(path)
    assert abs(len(mulaw) - 8000) <= 2  # one second at 8 kHz, one byte per sample
    decoded = wavstream.decode_mulaw(mulaw)
    assert abs(dominant_hz(decoded, 8000) - 440) < 5  # same pitch: resampled, not just decimated wrongly
    assert 8000 < np.abs(decoded).max() < 11500  # level kept through mixdown and μ-law


def test_opposite_stereo_channels_mix_down_to_silence(tmp_path):
    left = sine(0.5, 8000)
    stereo = np.stack([left, -left], axis=1).reshape(-1)
    path = tmp_path / "cancel.wav"
    write_pcm(path, stereo, 8000, channels=2)
    decoded = wavstream.decode_mulaw(wavstream.read_wav(path))
    assert np.abs(decoded).max() <= 8


def test_8khz_mulaw_wav_passes_through_byte_for_byte(tmp_path):
    original = bytes(np.random.default_rng(7).integers(0, 256, 1234, dtype=np.uint8))
    path = tmp_path / "line.wav"
    wavstream.write_wav(path, original)
    assert wavstream.read_wav(path) == original


def test_8khz_pcm_recording_round_trips_through_mulaw(tmp_path):
    pcm = sine(0.3, 8000)
    path = tmp_path / "pcm8k.wav"
    write_pcm(path, pcm, 8000)
    mulaw = wavstream.read_wav(path)
    assert mulaw == wavstream.encode_mulaw(pcm)


def test_frames_are_160_bytes_and_the_last_is_padded_with_silence():
    frames = list(wavstream.frames(b"\x00" * 330))
    assert [len(f) for f in frames] == [160, 160, 160]
    assert frames[2] == b"\x00" * 10 + b"\xff" * 150
    assert wavstream.SILENCE_FRAME == b"\xff" * 160
    assert wavstream.encode_mulaw(np.zeros(3, np.int16)) == b"\xff\xff\xff"


def test_mulaw_encoding_matches_g711_reference_points():
    samples = np.array([0, 1000, -1000, 32767, -32768, 8000], dtype=np.int16)
    decoded = wavstream.decode_mulaw(wavstream.encode_mulaw(samples)).astype(int)
    # μ-law's step grows with the level: error stays within the segment's quantum
    assert all(abs(d - s) <= max(8, abs(int(s)) // 16) for d, s in zip(decoded, samples.astype(int)))
    assert wavstream.encode_mulaw(np.array([32767], np.int16)) == b"\x80"
    assert wavstream.encode_mulaw(np.array([-32768], np.int16)) == b"\x00"


def test_a_file_that_is_not_a_wav_is_refused_with_how_to_fix(tmp_path):
    path = tmp_path / "call.wav"
    path.write_bytes(b"ID3\x03\x00 this is an mp3, not a wav" * 10)
    with pytest.raises(wavstream.WavError, match=r"not a WAV file.*sox"):
        wavstream.read_wav(path)


def test_a_truncated_wav_without_data_is_refused(tmp_path):
    path = tmp_path / "cut.wav"
    write_pcm(path, sine(0.2, 8000), 8000)
    path.write_bytes(path.read_bytes()[:30])  # the header is cut inside the fmt chunk
    with pytest.raises(wavstream.WavError, match="corrupt"):
        wavstream.read_wav(path)


def test_a_missing_file_says_it_cannot_be_read(tmp_path):
    with pytest.raises(wavstream.WavError, match="cannot read"):
        wavstream.read_wav(tmp_path / "nope.wav")
