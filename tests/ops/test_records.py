"""Call records in Redis: masking on write, paging, time ranges, retention, CSV flattening, WAV purge."""

from __future__ import annotations

import csv
import io
import json
import os
import time

import pytest

from ivr.keys import Keys
from ivr.ops import records
from ivr.ops.cli import export

KEYS = Keys("ivr")
DAY = 86400


def record(sid: str, **extra) -> dict:
    base = {"sid": sid, "hotline": "ko_support", "language": "ko", "caller": "+82******5678",
            "started_at": 1.0, "ended_at": 2.0, "duration_s": 1.0, "transcript": "결제가 두 번 됐어요",
            "earlier_transcripts": [], "speech": {"outcome": "ok", "turn": 0, "words": 3},
            "category": "payment", "confidence": 0.81, "runner_up": "refund", "reprompts": 0,
            "routed_on_first_utterance": True, "queue": "billing", "wait_s": 0.0, "agent": "minji",
            "dial_outcomes": [{"agent": "minji", "outcome": "answered"}], "fallback": False,
            "outcome": "answered", "audio_path": ""}
    base.update(extra)
    return base


def test_a_record_never_stores_an_unmasked_number_or_transcript(redis):
    records.write_record(redis, KEYS, record("CA1", caller="+821012345678",
                                            transcript="제 번호는 공일공 일이삼사 오육칠팔이에요",
                                            earlier_transcripts=["카드 사일일일 일일일일 일일일일 일일일일"]), 30)
    raw = json.dumps([f for _, f in redis.xrange(KEYS.records())], default=str)
    assert "12345678" not in raw and "1012345678" not in raw
    got = records.find_record(redis, KEYS, "CA1")
    assert got["caller"] == "+82******5678"
    assert got["transcript"] == "제 번호는 [PHONE]에요"
    assert got["earlier_transcripts"] == ["카드 [CARD]"]


def test_read_newest_and_oldest_first_across_pages(redis):
    for i in range(7):
        records.write_record(redis, KEYS, record(f"CA{i}"), 30)
    newest = [r["sid"] for r in records.read_records(redis, KEYS, page=3)]
    oldest = [r["sid"] for r in records.read_records(redis, KEYS, newest_first=False, page=2)]
    assert newest == [f"CA{i}" for i in reversed(range(7))]
    assert oldest == [f"CA{i}" for i in range(7)]
    assert [r["sid"] for r in records.read_records(redis, KEYS, limit=4, page=3)] == ["CA6", "CA5", "CA4", "CA3"]


def test_since_and_until_select_by_write_time(redis):
    now = time.time()
    for i, age_h in enumerate((50, 30, 20, 10, 1)):
        records.write_record(redis, KEYS, record(f"CA{i}"), 30, at=now - age_h * 3600)
    sids = lambda **kw: [r["sid"] for r in records.read_records(redis, KEYS, newest_first=False, **kw)]  # noqa: E731
    assert sids(since=now - 24 * 3600) == ["CA2", "CA3", "CA4"]
    assert sids(until=now - 24 * 3600) == ["CA0", "CA1"]
    assert sids(since=now - 40 * 3600, until=now - 5 * 3600) == ["CA1", "CA2", "CA3"]
    # the bounds are inclusive, to the millisecond
    exact = now - 20 * 3600
    assert sids(since=exact, until=exact) == ["CA2"]


def test_same_millisecond_records_all_kept(redis):
    at = time.time() - 60
    ids = [records.write_record(redis, KEYS, record(f"CA{i}"), 30, at=at) for i in range(3)]
    assert len(set(ids)) == 3
    assert [r["sid"] for r in records.read_records(redis, KEYS, newest_first=False)] == ["CA0", "CA1", "CA2"]


def test_retention_trims_old_records_as_new_ones_arrive(redis):
    now = time.time()
    for i in range(250):  # older than a 30-day retention
        records.write_record(redis, KEYS, record(f"OLD{i}"), 365, at=now - 40 * DAY + i)
    records.write_record(redis, KEYS, record("NEW"), 30)
    left = [r["sid"] for r in records.read_records(redis, KEYS)]
    assert left[0] == "NEW"
    # XADD MINID ~ drops whole stream nodes (100 entries each): most old ones are gone at once
    assert len(left) - 1 < 100
    assert records.trim_records(redis, KEYS, 30) == len(left) - 1
    assert [r["sid"] for r in records.read_records(redis, KEYS)] == ["NEW"]


def test_find_record_without_its_reference_key_scans(redis):
    for i in range(5):
        records.write_record(redis, KEYS, record(f"CA{i}"), 30)
    redis.delete(KEYS.record_ref("CA1"))
    assert records.find_record(redis, KEYS, "CA1")["sid"] == "CA1"
    assert records.find_record(redis, KEYS, "CAnope") is None
    assert records.find_record(redis, KEYS, "CA1", scan=False) is None  # request paths never walk the stream


def test_an_amended_record_is_read_in_place_of_the_first_masked(redis):
    assert records.amend_record(redis, KEYS, record("CA1"), 30) is None  # no record yet: nothing written
    assert redis.keys("*amended*") == []
    for i in range(3):
        records.write_record(redis, KEYS, record(f"CA{i}", transcript=""), 30)
    first = records.find_record(redis, KEYS, "CA1")["record_id"]
    assert records.amend_record(redis, KEYS, record("CA1", transcript="제 번호는 공일공 일이삼사 오육칠팔이에요"), 30) == first
    got = records.find_record(redis, KEYS, "CA1", scan=False)
    assert got["record_id"] == first and got["transcript"] == "제 번호는 [PHONE]에요" and got["amended_at"] > 0
    assert "12345678" not in json.dumps([redis.get(k) for k in redis.keys("*amended*")], ensure_ascii=False)
    # one record per call, where it was first written; every reader sees the new version
    assert [r["sid"] for r in records.read_records(redis, KEYS)] == ["CA2", "CA1", "CA0"]
    assert [r["transcript"] for r in records.read_records(redis, KEYS, newest_first=False)] == ["", "제 번호는 [PHONE]에요", ""]
    assert records.count_records(redis, KEYS) == 3
    assert 29 * DAY < redis.ttl(KEYS.record_amended(first)) <= 30 * DAY


def test_a_record_amended_while_an_export_reads_is_exported_once(redis):
    for i in range(4):
        records.write_record(redis, KEYS, record(f"CA{i}", transcript=""), 30)
    reading = records.read_records(redis, KEYS, newest_first=False, page=1)
    seen = [next(reading)]
    records.amend_record(redis, KEYS, record("CA0", transcript="read already"), 30)
    records.amend_record(redis, KEYS, record("CA2", transcript="not yet read"), 30)
    seen += list(reading)
    assert [r["sid"] for r in seen] == ["CA0", "CA1", "CA2", "CA3"]
    assert [r["transcript"] for r in seen] == ["", "", "not yet read", ""]


def test_unreadable_entries_are_skipped_not_fatal(redis):
    records.write_record(redis, KEYS, record("CA1"), 30)
    redis.xadd(KEYS.records(), {"json": "{not json"})
    redis.xadd(KEYS.records(), {"other": "x"})
    records.write_record(redis, KEYS, record("CA2"), 30)
    assert [r["sid"] for r in records.read_records(redis, KEYS)] == ["CA2", "CA1"]


def test_export_jsonl_round_trip(redis):
    written = [record(f"CA{i}", confidence=0.5 + i / 10, transcript=f"문의 {i}") for i in range(4)]
    for r in written:
        records.write_record(redis, KEYS, r, 30)
    out = io.StringIO()
    assert export(redis, KEYS, out, "jsonl", None, None) == 4
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    for got, sent in zip(lines, written):
        got.pop("record_id")
        assert got == sent


def test_export_csv_flattens_nested_fields(redis):
    records.write_record(redis, KEYS, record("CA1"), 30)
    records.write_record(redis, KEYS, record("CA2", speech={"outcome": "no_speech", "extra": "x"}, agent=None,
                                              transcript='쉼표, "따옴표"\n줄바꿈'), 30)
    out = io.StringIO()
    assert export(redis, KEYS, out, "csv", None, None) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    header = out.getvalue().splitlines()[0].split(",")
    assert header[:2] == ["record_id", "sid"]
    assert "speech.outcome" in header and "speech.extra" in header and "speech" not in header
    assert [r["sid"] for r in rows] == ["CA1", "CA2"]
    assert rows[0]["speech.outcome"] == "ok" and rows[0]["speech.extra"] == ""
    assert rows[1]["speech.outcome"] == "no_speech" and rows[1]["agent"] == ""
    assert rows[1]["transcript"] == '쉼표, "따옴표"\n줄바꿈'
    assert json.loads(rows[0]["dial_outcomes"]) == [{"agent": "minji", "outcome": "answered"}]
    assert rows[0]["confidence"] == "0.81" and rows[0]["routed_on_first_utterance"] == "True"


def test_an_export_has_the_records_there_were_when_it_began(redis):
    """Calls ending while an export runs are in the next one: CSV's two readings (columns,
    then rows) see the same records, so a late record's fields are never dropped silently."""
    records.write_record(redis, KEYS, record("CA1"), 30)
    records.write_record(redis, KEYS, record("CA2"), 30)

    class Arriving(io.StringIO):  # a call ends as the export writes its header
        def write(self, text):
            if not self.getvalue():
                records.write_record(redis, KEYS, record("CA3", callback={"reached": True}), 30)
            return super().write(text)

    out = Arriving()
    assert export(redis, KEYS, out, "csv", None, None) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["sid"] for r in rows] == ["CA1", "CA2"]
    later = io.StringIO()
    assert export(redis, KEYS, later, "jsonl", None, None) == 3
    assert export(redis, KEYS, io.StringIO(), "csv", time.time() + 60, None) == 0  # nothing in range
    empty = io.StringIO()
    redis.delete(KEYS.records())
    assert export(redis, KEYS, empty, "csv", None, None) == 0


def test_daily_counters(redis):
    assert records.read_daily(redis, KEYS, "2026-11-01") == {}
    records.bump_daily(redis, KEYS, "calls", day="2026-11-01")
    records.bump_daily(redis, KEYS, "calls", day="2026-11-01")
    records.bump_daily(redis, KEYS, "abandoned", 3, day="2026-11-01")
    assert records.read_daily(redis, KEYS, "2026-11-01") == {"calls": 2, "abandoned": 3}
    assert redis.ttl(KEYS.daily_stats("2026-11-01")) > 300 * DAY
    records.bump_daily(redis, KEYS, "answered")  # today, local date
    assert records.read_daily(redis, KEYS) == {"answered": 1}


def _wav(folder, name, age_days):
    path = folder / name
    path.write_bytes(b"RIFF....WAVE")
    t = time.time() - age_days * DAY
    os.utime(path, (t, t))
    return path


def test_purge_recordings_deletes_only_wavs_past_retention(tmp_path):
    old, fresh = _wav(tmp_path, "CAold-0.wav", 31), _wav(tmp_path, "CAnew-0.wav", 29)
    other = tmp_path / "notes.txt"
    other.write_text("keep")
    os.utime(other, (0, 0))
    assert records.purge_recordings(tmp_path, 30) == [old]
    assert fresh.exists() and other.exists() and not old.exists()
    assert records.purge_recordings(tmp_path / "missing", 30) == []


def test_writing_a_record_purges_old_recordings_at_most_hourly(redis, tmp_path):
    folder = tmp_path / "recordings"
    folder.mkdir()
    first = _wav(folder, "CAold-0.wav", 40)
    records.write_record(redis, KEYS, record("CA1", audio_path=str(_wav(folder, "CA1-0.wav", 0))), 30)
    assert not first.exists()
    second = _wav(folder, "CAold-1.wav", 40)
    records.write_record(redis, KEYS, record("CA2", audio_path=str(_wav(folder, "CA2-0.wav", 0))), 30)
    assert second.exists()  # within the hour: left for the next purge
    assert records.purge_recordings(folder, 30) == [second]


@pytest.mark.parametrize("value", [None, "", "nested"])
def test_flatten(value):
    flat = records.flatten({"a": {"b": {"c": 1}}, "l": [1, 2], "n": None, "v": value})
    assert flat["a.b.c"] == 1 and flat["l"] == "[1, 2]" and flat["n"] == ""
    assert flat["v"] == ("" if value is None else value) and set(flat) == {"a.b.c", "l", "n", "v"}


def test_a_real_call_leaves_one_masked_record_and_logs_without_the_number(live_hotline, caplog):
    """A call through the real app (stand-in Twilio, Vosk, classifier, router): one record
    in the stream with the caller masked, and JSON log lines that carry the call SID and
    never the caller's number."""
    import logging

    from ivr.logs import JsonFormatter

    caplog.set_level(logging.INFO)
    h = live_hotline()
    h.available(*[a.id for a in h.router.rules.roster.agents])
    wav = h.fixtures / "ko_payment.wav"
    trace = h.standin().place_call([wav, wav], from_="+821055557777", to="+8215880000", agent_behaviour="yes:2")
    assert trace.ok, trace.render()
    deadline = time.monotonic() + 10
    while (found := records.find_record(h.redis, h.keys, trace.call_sid)) is None:
        assert time.monotonic() < deadline, "no record written"
        time.sleep(0.1)
    assert [r["sid"] for r in records.read_records(h.redis, h.keys)] == [trace.call_sid]
    assert found["caller"] == "+82******7777" and found["outcome"] == "answered"
    for field in ("started_at", "ended_at", "hotline", "transcript", "category", "confidence", "runner_up",
                  "reprompts", "queue", "wait_s", "agent", "dial_outcomes"):
        assert field in found, field
    stored = json.dumps([f for _, f in h.redis.xrange(h.keys.records())], default=str)
    assert "55557777" not in stored
    lines = [JsonFormatter().format(r) for r in caplog.records if r.name.startswith("ivr.")]
    assert lines and not [line for line in lines if "55557777" in line]
    call_lines = [json.loads(line) for line in lines if trace.call_sid in line]
    assert any(e["event"] == "call record written" for e in call_lines)
    assert all(e.get("call_sid") == trace.call_sid for e in call_lines), call_lines


def test_logs_mask_what_a_careless_log_call_passes():
    import logging

    from ivr.logs import JsonFormatter, TextFormatter

    entry = logging.makeLogRecord({"msg": "heard", "levelname": "INFO", "call_sid": "CA1",
                                   "transcript": "공일공 일이삼사 오육칠팔", "caller": "+821012345678"})
    as_json = json.loads(JsonFormatter().format(entry))
    assert as_json["transcript"] == "[PHONE]" and as_json["caller"] == "+82******5678" and as_json["call_sid"] == "CA1"
    assert "12345678" not in TextFormatter().format(entry)
