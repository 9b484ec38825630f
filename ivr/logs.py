"""Structured logging: one JSON line per event, with the call SID when there is one.

Secrets (the Twilio auth token, the API token, Redis passwords) are registered with
:func:`hide` and replaced by ``***`` wherever they would appear in a log line.
"""

from __future__ import annotations

import json
import logging
import sys
import time

_SECRETS: set[str] = set()
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def hide(*secrets: str | None) -> None:
    for s in secrets:
        if s and len(s) >= 4:
            _SECRETS.add(s)


def scrub(text: str) -> str:
    for s in _SECRETS:
        if s in text:
            text = text.replace(s, "***")
    return text


# Extras that could carry what a caller said or their number are masked whatever a
# log call passes (the call flow masks before logging; this is the safety net).
_SPOKEN = frozenset({"transcript", "partial", "text", "utterance"})
_NUMBERS = frozenset({"caller", "from", "from_number", "caller_number"})


def private(key: str, value):
    if isinstance(value, str) and value and (key in _SPOKEN or key in _NUMBERS):
        from ivr.ops.masking import mask, mask_number

        return mask(value) if key in _SPOKEN else mask_number(value)
    return value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = private(key, value)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return scrub(json.dumps(entry, ensure_ascii=False, default=str))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = {k: private(k, v) for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
        line = f"{time.strftime('%H:%M:%S', time.localtime(record.created))} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return scrub(line)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the moment of the record, not at start-up
    (a test runner or a daemoniser may swap it; the old stream may be closed by then)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure(level: str = "INFO", json_lines: bool = True, stream=None) -> None:
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("werkzeug", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
