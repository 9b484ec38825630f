"""`ivr calls export|list|show|purge` against a real Redis."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime

import pytest

from ivr.cli import main
from ivr.keys import Keys
from ivr.ops import records
from ivr.ops.cli import parse_when

KEYS = Keys("ivr")
DAY = 86400


@pytest.fixture
def setup(config_file, redis, redis_url, clean_env, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    now = time.time()
    for i, age_h in enumerate((72, 30, 5, 1)):
        records.write_record(redis, KEYS, {
            "sid": f"CA{i}", "hotline": "ko_support", "language": "ko", "caller": "+821099998888",
            "started_at": now - age_h * 3600 - 60, "ended_at": now - age_h * 3600, "duration_s": 60.0,
            "transcript": f"환불 문의 {i}", "speech": {"outcome": "ok", "words": 2}, "category": "refund",
            "confidence": 0.7, "queue": "billing", "wait_s": 12.5, "agent": "minji", "outcome": "answered",
            "dial_outcomes": [{"agent": "minji", "outcome": "answered"}]}, 30, at=now - age_h * 3600)
    return config_file


def run(config_file, *argv):
    return main(["--config", str(config_file), "calls", *argv])


def test_export_jsonl_since_an_age(setup, capsys):
    assert run(setup, "export", "--since", "24h") == 0
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["sid"] for r in rows] == ["CA2", "CA3"]
    assert all(r["caller"] == "+82******8888" for r in rows)
    assert "2 records exported" in err


def test_export_csv_to_a_file_with_until(setup, tmp_path, capsys):
    target = tmp_path / "out.csv"
    assert run(setup, "export", "--since", "4d", "--until", "2h", "--format", "csv", "--output", str(target)) == 0
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert [r["sid"] for r in rows] == ["CA0", "CA1", "CA2"]
    assert rows[0]["speech.outcome"] == "ok" and rows[0]["transcript"] == "환불 문의 0"
    assert not (tmp_path / "out.csv.partial").exists()


def test_export_by_date_and_iso_time(setup, capsys):
    since = datetime.fromtimestamp(time.time() - 2 * 3600).isoformat(timespec="seconds")
    assert run(setup, "export", "--since", since) == 0
    assert [json.loads(x)["sid"] for x in capsys.readouterr().out.splitlines()] == ["CA3"]
    tomorrow = datetime.fromtimestamp(time.time() + DAY).date().isoformat()
    assert run(setup, "export", "--since", tomorrow) == 0
    out, err = capsys.readouterr()
    assert out == "" and "0 records exported" in err


def test_bad_times_are_clear_errors(setup, capsys):
    with pytest.raises(SystemExit) as exc:
        run(setup, "export", "--since", "last tuesday")
    assert "--since" in str(exc.value) and "24h" in str(exc.value)
    with pytest.raises(SystemExit) as exc:
        run(setup, "export", "--since", "1h", "--until", "2h")
    assert "before" in str(exc.value)


def test_export_to_an_unwritable_place_leaves_nothing(setup, tmp_path):
    target = tmp_path / "missing-dir" / "out.jsonl"
    with pytest.raises(OSError):
        run(setup, "export", "--output", str(target))
    assert not target.exists() and not target.parent.exists()


def test_list_is_a_table_newest_first(setup, capsys):
    assert run(setup, "list", "--limit", "3") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["ENDED", "SID", "HOTLINE", "CATEGORY"]
    assert [line.split()[2] for line in lines[1:]] == ["CA3", "CA2", "CA1"]
    assert "+8210" not in "\n".join(lines)


def test_show_one_call(setup, capsys):
    assert run(setup, "show", "CA2") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["sid"] == "CA2" and shown["caller"] == "+82******8888"
    assert run(setup, "show", "CAnothere") == 1
    assert "no record of call CAnothere" in capsys.readouterr().err


def test_purge_trims_records_and_recordings(setup, redis, capsys):
    now = time.time()
    # an entry older than retention can only be the first one: rewrite the stream
    redis.delete(KEYS.records())
    records.write_record(redis, KEYS, {"sid": "CAold"}, 365, at=now - 40 * DAY)
    records.write_record(redis, KEYS, {"sid": "CAnew"}, 365, at=now - DAY)
    folder = setup.parent / "var" / "recordings"
    folder.mkdir(parents=True)
    old = folder / "CAold-0.wav"
    old.write_bytes(b"RIFF")
    os.utime(old, (now - 40 * DAY, now - 40 * DAY))
    assert run(setup, "purge") == 0
    assert "1 record and 1 recording older than 30 days deleted" in capsys.readouterr().out
    assert [r["sid"] for r in records.read_records(redis, KEYS)] == ["CAnew"]
    assert not old.exists()


def test_parse_when():
    now = 1_800_000_000.0
    assert parse_when("24h", now=now) == now - DAY
    assert parse_when("7d", now=now) == now - 7 * DAY
    assert parse_when("90m", now=now) == now - 5400
    assert parse_when("1700000000", now=now) == 1_700_000_000
    assert parse_when("2026-11-01T00:00:00+09:00") == datetime.fromisoformat("2026-10-31T15:00:00+00:00").timestamp()
    assert parse_when("2026-11-01") == datetime(2026, 11, 1).timestamp()
    assert parse_when(None) is None


def test_a_date_is_read_as_a_date_and_a_date_alone_until_means_its_whole_day():
    start = datetime(2026, 11, 1).timestamp()
    assert parse_when("20261101") == start  # not Unix seconds in August 1970
    assert parse_when("2026-11-01", option="--until") == start + DAY - 0.001
    assert parse_when("20261101", option="--until") == start + DAY - 0.001
    assert parse_when("2026-11-01T08:00", option="--until") == datetime(2026, 11, 1, 8).timestamp()
    utc_day = datetime.fromisoformat("2026-11-01T00:00:00+00:00").timestamp()
    assert parse_when("2026-11-01Z", option="--until") == utc_day + DAY - 0.001
    assert parse_when("0") == 0.0  # from the beginning


@pytest.mark.parametrize("text", ["-5", "nan", "inf", "1e20", "yesterday"])
def test_a_time_no_record_could_have_is_a_clear_error(text):
    with pytest.raises(SystemExit, match=r"ivr: --since: .*" + re.escape(repr(text))):
        parse_when(text, now=1_800_000_000.0)


def test_since_and_until_the_same_date_export_that_day(redis):
    from ivr.keys import Keys
    from ivr.ops.cli import export

    keys = Keys("ivr")
    noon = datetime(2026, 11, 1, 12).timestamp()
    for sid, at in (("CAday", noon), ("CAnext", noon + DAY)):
        records.write_record(redis, keys, {"sid": sid}, 10_000, at=at)
    out = io.StringIO()
    since, until = parse_when("2026-11-01"), parse_when("2026-11-01", option="--until")
    assert export(redis, keys, out, "jsonl", since, until) == 1 and '"CAday"' in out.getvalue()


def test_installed_command_streams_jsonl(setup, redis_url):
    env = dict(os.environ, REDIS_URL=redis_url)
    done = subprocess.run([sys.executable, "-m", "ivr", "--config", str(setup), "calls", "export", "--since", "2d"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert [json.loads(x)["sid"] for x in done.stdout.splitlines()] == ["CA1", "CA2", "CA3"]
