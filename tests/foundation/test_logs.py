"""Log lines: one JSON object per event, the call SID kept, personal data not, and the
handler writes to the stderr of the moment (a closed earlier stream is never used)."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from ivr import logs


@pytest.fixture
def root_handlers():
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    yield
    root.handlers[:] = saved
    root.setLevel(level)


def test_one_json_line_per_event_with_the_call_sid_and_no_caller_number(root_handlers, monkeypatch):
    logs.configure("INFO", json_lines=True)
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    logging.getLogger("ivr.test").info("call started", extra={"call_sid": "CA1", "caller": "+821012345678"})
    first.close()  # e.g. a test runner's capture of an earlier test
    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger("ivr.test").info("call ended", extra={"call_sid": "CA1"})
    lines = second.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["event"] == "call ended" and entry["call_sid"] == "CA1" and entry["level"] == "info"


def test_caller_number_is_masked_in_the_line(root_handlers, monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    logs.configure("INFO", json_lines=True)
    logging.getLogger("ivr.test").info("call started", extra={"call_sid": "CA1", "caller": "+821012345678"})
    line = out.getvalue()
    assert "+821012345678" not in line and "5678" in line and json.loads(line)["call_sid"] == "CA1"
