"""Twilio Media Stream messages parse into typed events; bad ones raise, never crash."""

from __future__ import annotations

import base64
import json

import pytest

from ivr.telephony import protocol


def media(payload: str, seq="3"):
    return json.dumps({"event": "media", "sequenceNumber": seq, "streamSid": "MZ1",
                       "media": {"track": "inbound", "chunk": "2", "timestamp": "40", "payload": payload}})


def test_media_frame_numbers_arrive_as_strings_and_audio_is_decoded():
    ev = protocol.parse(media(base64.b64encode(b"\xff" * 160).decode()))
    assert ev == protocol.Media(sequence=3, track="inbound", chunk=2, timestamp_ms=40, audio=b"\xff" * 160)


def test_start_carries_custom_parameters():
    raw = json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1", "start": {
        "accountSid": "AC1", "streamSid": "MZ1", "callSid": "CA1", "tracks": ["inbound"],
        "customParameters": {"token": "abc"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}})
    ev = protocol.parse(raw)
    assert isinstance(ev, protocol.Start)
    assert (ev.call_sid, ev.custom, ev.sample_rate, ev.encoding) == ("CA1", {"token": "abc"}, 8000, "audio/x-mulaw")


@pytest.mark.parametrize("raw,reason", [
    ("{not json", "not JSON"),
    ("[]", "not an object"),
    (json.dumps({"event": "teleport"}), "unknown event"),
    (media("***notbase64***"), "not base64"),
    (media("AAAA", seq="seven"), "not a number"),
    (json.dumps({"event": "media"}), "media is missing"),
    (json.dumps({"event": "start", "start": {}}), "callSid is missing"),
    ("x" * (protocol.MAX_MESSAGE_BYTES + 1), "exceeds"),
    # Python's JSON takes these; no field of Twilio's can hold them
    ('{"event": "media", "sequenceNumber": Infinity, "media": {"payload": "AAAA"}}', "not a number"),
    ('{"event": "media", "media": {"payload": "AAAA", "timestamp": NaN}}', "not a number"),
    (json.dumps({"event": "start", "start": {"callSid": "CA1", "tracks": 5}}), "tracks is not a list"),
    ("[" * 5000 + "]" * 5000, "RecursionError"),
])
def test_malformed_messages_raise_a_clear_error(raw, reason):
    with pytest.raises(protocol.MalformedMessage, match=reason):
        protocol.parse(raw)


def test_stop_dtmf_mark_connected():
    assert protocol.parse('{"event":"stop","stop":{"callSid":"CA1"}}') == protocol.Stop("CA1")
    assert protocol.parse('{"event":"dtmf","dtmf":{"digit":"5"}}') == protocol.Dtmf("5")
    assert protocol.parse('{"event":"mark","mark":{"name":"p1"}}') == protocol.Mark("p1")
    assert isinstance(protocol.parse('{"event":"connected","protocol":"Call","version":"1.0.0"}'), protocol.Connected)
