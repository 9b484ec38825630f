"""Property-based checks: whatever Twilio (or an attacker) sends, we answer sanely."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from ivr.app import create_app
from ivr.config import load
from ivr.keys import Keys
from ivr.services import Services
from ivr.store import Store, connect
from ivr.telephony import protocol

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1")), json_values.map(json.dumps)))
@settings(max_examples=400, deadline=None)
def test_any_message_parses_or_raises_malformed(raw):
    try:
        protocol.parse(raw)
    except protocol.MalformedMessage:
        pass


@given(event=st.sampled_from(["media", "start", "stop", "mark", "dtmf", "connected"]),
       body=st.dictionaries(st.sampled_from(["media", "start", "stop", "mark", "dtmf", "sequenceNumber", "streamSid"]),
                            json_values, max_size=5))
@settings(max_examples=400, deadline=None)
def test_known_events_with_garbage_fields_never_crash(event, body):
    try:
        protocol.parse(json.dumps(dict(body, event=event)))
    except protocol.MalformedMessage:
        pass


@given(st.binary(min_size=0, max_size=4000))
@settings(max_examples=100, deadline=None)
def test_media_payload_of_any_size_round_trips(audio):
    raw = json.dumps({"event": "media", "sequenceNumber": "9", "media": {
        "track": "inbound", "chunk": "1", "timestamp": "20", "payload": base64.b64encode(audio).decode()}})
    assert protocol.parse(raw).audio == audio


TOKEN = "fuzz-token-123456"
PUBLIC = "https://hotline.example.test"


def _app(config_file, redis_url):
    cfg = load(config_file, env={"TWILIO_AUTH_TOKEN": TOKEN, "IVR_PUBLIC_URL": PUBLIC, "REDIS_URL": redis_url})
    services = Services(config=cfg, store=Store(connect(redis_url), "ivr"), keys=Keys("ivr"))
    return cfg, create_app(cfg, services)


def test_signed_webhooks_with_arbitrary_parameters_always_answer_twiml(config_file, redis_url, redis):
    cfg, app = _app(config_file, redis_url)
    client = app.test_client()
    validator = RequestValidator(TOKEN)
    names = st.sampled_from(["CallSid", "From", "To", "CallStatus", "DialCallStatus", "QueueResult",
                             "DialCallDuration", "CallDuration", "QueueTime", "Digits", "x"])
    paths = st.sampled_from(["/twilio/voice", "/twilio/listened", "/twilio/wait", "/twilio/queued",
                             "/twilio/dialed", "/twilio/status", "/twilio/answered"])

    @given(path=paths, params=st.dictionaries(names, st.text(max_size=40), max_size=8))
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    def check(path, params):
        sig = validator.compute_signature(PUBLIC + path, params)
        response = client.post(path, data=params, headers={"X-Twilio-Signature": sig})
        assert response.status_code == 200, (path, params, response.data[:200])
        root = ET.fromstring(response.data)
        assert root.tag == "Response"

    check()
