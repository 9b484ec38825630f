"""Twilio Media Streams wire format ⇄ typed events. Nothing else knows Twilio's JSON.

Twilio sends ``connected``, ``start``, ``media``, ``mark``, ``dtmf`` and ``stop``;
numeric fields arrive as strings and frame sizes are not promised. We may send back
``media``, ``mark`` and ``clear`` only.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field

MAX_MESSAGE_BYTES = 64 * 1024  # a 20 ms frame is ~300 bytes of JSON; anything huge is hostile
MAX_PAYLOAD_BYTES = 16 * 1024  # μ-law bytes in one media message (2 s of audio)


class MalformedMessage(ValueError):
    """A Media Stream message we cannot use; logged and skipped, never fatal."""


@dataclass(frozen=True)
class Connected:
    protocol: str
    version: str


@dataclass(frozen=True)
class Start:
    stream_sid: str
    call_sid: str
    account_sid: str
    tracks: tuple[str, ...]
    encoding: str
    sample_rate: int
    channels: int
    custom: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Media:
    sequence: int
    track: str
    chunk: int
    timestamp_ms: int
    audio: bytes  # μ-law bytes, base64-decoded


@dataclass(frozen=True)
class Mark:
    name: str


@dataclass(frozen=True)
class Dtmf:
    digit: str


@dataclass(frozen=True)
class Stop:
    call_sid: str


Event = Connected | Start | Media | Mark | Dtmf | Stop


def _int(value, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        raise MalformedMessage(f"{name} is not a number: {str(value)[:40]!r}") from None


def _obj(value, name: str) -> dict:
    if not isinstance(value, dict):
        raise MalformedMessage(f"{name} is missing or not an object")
    return value


def _tracks(value) -> tuple[str, ...]:
    if not value:
        return ("inbound",)
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise MalformedMessage("start.tracks is not a list of names")
    return tuple(value)


def parse(raw: str | bytes) -> Event:
    """One Twilio message → a typed event; raises :class:`MalformedMessage`, and only that,
    whatever the peer sends (``Infinity`` where a number goes, a number where a list goes,
    arrays nested past the parser's depth)."""
    try:
        return _parse(raw)
    except MalformedMessage:
        raise
    except (TypeError, ValueError, OverflowError, RecursionError, AttributeError) as exc:
        raise MalformedMessage(f"unusable message: {type(exc).__name__}: {str(exc)[:80]}") from None


def _parse(raw: str | bytes) -> Event:
    if raw is None:
        raise MalformedMessage("empty message")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise MalformedMessage(f"message of {len(raw)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        msg = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedMessage(f"not JSON: {exc}") from None
    msg = _obj(msg, "message")
    kind = msg.get("event")
    if kind == "media":
        media = _obj(msg.get("media"), "media")
        payload = media.get("payload")
        if not isinstance(payload, str):
            raise MalformedMessage("media.payload is missing")
        if len(payload) > MAX_PAYLOAD_BYTES * 4 // 3 + 4:
            raise MalformedMessage("media.payload is too large")
        try:
            audio = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedMessage("media.payload is not base64") from None
        return Media(
            sequence=_int(msg.get("sequenceNumber", 0), "sequenceNumber"),
            track=str(media.get("track", "inbound")),
            chunk=_int(media.get("chunk", 0), "media.chunk"),
            timestamp_ms=_int(media.get("timestamp", 0), "media.timestamp"),
            audio=audio,
        )
    if kind == "start":
        start = _obj(msg.get("start"), "start")
        fmt = _obj(start.get("mediaFormat", {}), "start.mediaFormat")
        custom = start.get("customParameters") or {}
        if not isinstance(custom, dict):
            raise MalformedMessage("start.customParameters is not an object")
        call_sid = start.get("callSid")
        if not isinstance(call_sid, str) or not call_sid:
            raise MalformedMessage("start.callSid is missing")
        return Start(
            stream_sid=str(start.get("streamSid") or msg.get("streamSid") or ""),
            call_sid=call_sid,
            account_sid=str(start.get("accountSid", "")),
            tracks=_tracks(start.get("tracks")),
            encoding=str(fmt.get("encoding", "audio/x-mulaw")),
            sample_rate=_int(fmt.get("sampleRate", 8000), "start.mediaFormat.sampleRate"),
            channels=_int(fmt.get("channels", 1), "start.mediaFormat.channels"),
            custom={str(k): str(v) for k, v in custom.items()},
        )
    if kind == "connected":
        return Connected(protocol=str(msg.get("protocol", "")), version=str(msg.get("version", "")))
    if kind == "mark":
        return Mark(name=str(_obj(msg.get("mark"), "mark").get("name", "")))
    if kind == "dtmf":
        return Dtmf(digit=str(_obj(msg.get("dtmf"), "dtmf").get("digit", "")))
    if kind == "stop":
        stop = msg.get("stop") if isinstance(msg.get("stop"), dict) else {}
        return Stop(call_sid=str(stop.get("callSid", "")))
    raise MalformedMessage(f"unknown event {str(kind)[:40]!r}")


def mark(stream_sid: str, name: str) -> str:
    return json.dumps({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})


def clear(stream_sid: str) -> str:
    return json.dumps({"event": "clear", "streamSid": stream_sid})
