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


def test_configured_secrets_never_reach_a_log_line(root_handlers, monkeypatch, config_file, redis_url):
    """create_app registers the Twilio and API tokens; a line that would carry one (a message,
    an extra, a traceback) shows *** instead, in JSON lines and in plain text alike."""
    from ivr.app import create_app
    from ivr.config import load
    from ivr.keys import Keys
    from ivr.services import Services
    from ivr.store import Store, connect

    twilio_token, api_token = "tw-secret-0123456789abcdef", "api-secret-fedcba9876543210"
    cfg = load(config_file, env={"TWILIO_AUTH_TOKEN": twilio_token, "IVR_API_TOKEN": api_token, "REDIS_URL": redis_url})
    services = Services(config=cfg, store=Store(connect(redis_url), "ivr"), keys=Keys("ivr"))
    services.problems.update(speech="not loaded in this test", classifier="not loaded", routing="not loaded")
    create_app(cfg, services)
    for json_lines in (True, False):
        out = io.StringIO()
        monkeypatch.setattr(sys, "stderr", out)
        logs.configure("INFO", json_lines=json_lines)
        log = logging.getLogger("ivr.test")
        log.warning(f"token was {twilio_token}", extra={"call_sid": "CA1", "header": f"Bearer {api_token}"})
        try:
            raise RuntimeError(f"auth failed with {api_token}")
        except RuntimeError:
            log.exception("request failed")
        text = out.getvalue()
        assert twilio_token not in text and api_token not in text, text
        assert text.count("***") >= 3, text
