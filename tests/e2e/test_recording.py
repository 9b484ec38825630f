"""Recording for replay: with ``calls.record_audio`` a call leaves its caller's side as WAVs
(one per listening turn) and its masked record beside them, and `ivr replay` plays them
again to the same effect: a misrouted call becomes a regression test by copying files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.e2e.test_call_flow import KO, record_of

RECORD_AUDIO = lambda text: text.replace("record_audio: false", "record_audio: true")  # noqa: E731


def test_a_recorded_call_is_kept_turn_by_turn_and_replays_to_the_same_outcome(live_hotline, tmp_path):
    from ivr.telephony.cli import recorded_call
    from ivr.telephony.wavstream import read_wav

    h = live_hotline(config=RECORD_AUDIO)
    h.available("emma")
    silence, payment = h.fixtures / "silence_6s.wav", h.fixtures / "ko_payment.wav"
    first = h.standin().place_call([silence, payment], to=KO, agent_behaviour="yes:2")
    assert first.ok, first.render()
    record = record_of(h, first.call_sid)

    # every turn has its WAV, in order, holding exactly the frames the caller sent
    assert record["reprompts"] == 1 and len(record["recordings"]) == 2
    for path, source in zip(record["recordings"], (silence, payment)):
        kept, sent = read_wav(path), read_wav(source)
        assert Path(path).name.startswith(first.call_sid) and 0 < len(kept) <= len(sent) + 160
        assert kept == sent[:len(kept)] or sent == kept[:len(sent)]
    # the masked record beside them says how to replay the call
    folder = Path(record["recordings"][0]).parent
    sidecar = json.loads((folder / f"{first.call_sid}.json").read_text(encoding="utf-8"))
    assert sidecar["sid"] == first.call_sid and sidecar["to"] == KO
    assert sidecar["recordings"] == [Path(p).name for p in record["recordings"]]
    assert sidecar["replay"].startswith("ivr replay ") and f"--to {KO}" in sidecar["replay"]
    assert "+15551230000" not in json.dumps(sidecar)  # the caller's number stays masked

    # copied into a test folder, the files are a call `ivr replay` plays again
    regression = tmp_path / "regression"
    regression.mkdir()
    for name in [*sidecar["recordings"], f"{first.call_sid}.json"]:
        shutil.copy(folder / name, regression / name)
    wavs, to = recorded_call([str(regression / f"{first.call_sid}.json")])
    assert to == KO and [Path(w).name for w in wavs] == sidecar["recordings"]
    h.available("emma")
    again = h.standin().place_call([read_wav(w) for w in wavs], to=to, agent_behaviour="yes:2")
    assert again.ok, again.render()
    replayed = record_of(h, again.call_sid)
    assert replayed["reprompts"] == record["reprompts"]
    assert replayed["speech"]["outcome"] == record["speech"]["outcome"]
    assert replayed["queue"] == record["queue"] and replayed["agent"] == record["agent"]


def test_replay_refuses_a_file_that_is_not_a_recorded_calls_record(tmp_path, config_file):
    bad = tmp_path / "CA1.json"
    bad.write_text('{"sid": "CA1"}', encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "ivr", "--config", str(config_file), "replay", str(bad)],
                            capture_output=True, text=True, timeout=60,
                            env={"TWILIO_AUTH_TOKEN": "t", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert f"{bad}: not a recorded call's record" in result.stderr


def replay_cli(h, *args: str) -> subprocess.CompletedProcess:
    """`ivr replay` as a user runs it, against the real app ``h`` serves."""
    env = {"TWILIO_AUTH_TOKEN": h.twilio_token, "IVR_PUBLIC_URL": h.public_url, "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "ivr", "--config", str(Path(h.config.base_dir) / "config.yaml"),
                           "replay", *args, "--url", h.base_url, "--speed", "4", "--json"],
                          capture_output=True, text=True, timeout=300, env=env)


def test_ivr_replay_plays_agents_who_do_not_answer_against_the_real_app(live_hotline):
    from tests.e2e.test_call_flow import PAIR

    h = live_hotline(agents=lambda _: PAIR)
    h.available("solo", "backup")
    result = replay_cli(h, str(h.fixtures / "ko_game.wav"), str(h.fixtures / "ko_game.wav"),
                        "--to", KO, "--agent-answers", "no", "yes:3")
    assert result.returncode == 0, result.stderr + result.stdout
    trace = json.loads(result.stdout)
    assert trace["to"] == KO and [d["status"] for d in trace["dials"]] == ["no-answer", "completed"]
    record = record_of(h, trace["call_sid"])
    assert [o["status"] for o in record["dial_outcomes"]] == ["no-answer", "completed"]
    assert trace["connected_to"] == {a.id: a.address for a in h.router.rules.roster.agents}[record["agent"]]


def test_ivr_replay_to_another_number_reaches_that_hotline(live_hotline):
    """--to picks the hotline: the English one has no speech model installed here, so the
    caller is put through to a person at once, greeted in English."""
    h = live_hotline()
    h.available("emma")
    en = h.config.hotline("en")
    result = replay_cli(h, str(h.fixtures / "ko_payment.wav"), "--to", en.numbers[0])
    assert result.returncode == 0, result.stderr + result.stdout
    trace = json.loads(result.stdout)
    assert trace["to"] == en.numbers[0] and en.prompts.fallback in trace["says"]
    assert trace["streams"] == []  # no listening without a model
    record = record_of(h, trace["call_sid"])
    assert record["hotline"] == "en" and record["agent"] == "emma"
