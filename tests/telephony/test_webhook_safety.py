"""Webhooks refuse forged requests and always answer valid TwiML that reaches a human."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from twilio.request_validator import RequestValidator

from ivr.app import create_app
from ivr.config import load
from ivr.keys import Keys
from ivr.services import Services
from ivr.store import Store, connect

TOKEN = "test-auth-token-123"
PUBLIC = "https://hotline.example.test"


@pytest.fixture
def cfg(config_file, redis_url):
    return load(config_file, env={"TWILIO_AUTH_TOKEN": TOKEN, "IVR_PUBLIC_URL": PUBLIC, "REDIS_URL": redis_url})


def app_with(cfg, client):
    services = Services(config=cfg, store=Store(client, "ivr"), keys=Keys("ivr"))
    services.problems.update(speech="not loaded in this test", classifier="not loaded", routing="not loaded")
    return create_app(cfg, services)


def signed_post(client, path, params, token=TOKEN):
    sig = RequestValidator(token).compute_signature(PUBLIC + path, params)
    return client.post(path, data=params, headers={"X-Twilio-Signature": sig})


CALL = {"CallSid": "CA00000000000000000000000000000001", "AccountSid": "AC1", "From": "+821012345678",
        "To": "+8215880000", "CallStatus": "ringing", "Direction": "inbound"}


def test_forged_signature_is_refused_and_changes_nothing(cfg, redis):
    app = app_with(cfg, connect(cfg.redis.url))
    client = app.test_client()
    response = signed_post(client, "/twilio/voice", CALL, token="not-the-token")
    assert response.status_code == 403
    assert b"X-Twilio-Signature" in response.data
    assert redis.keys("*") == []
    response = client.post("/twilio/voice", data=CALL)  # no signature at all
    assert response.status_code == 403
    assert redis.keys("*") == []


def test_signature_over_a_tampered_parameter_is_refused(cfg, redis):
    client = app_with(cfg, connect(cfg.redis.url)).test_client()
    sig = RequestValidator(TOKEN).compute_signature(PUBLIC + "/twilio/voice", CALL)
    response = client.post("/twilio/voice", data=dict(CALL, From="+15550000000"), headers={"X-Twilio-Signature": sig})
    assert response.status_code == 403


def test_without_speech_or_router_the_caller_is_transferred_to_a_human(cfg, redis):
    client = app_with(cfg, connect(cfg.redis.url)).test_client()
    response = signed_post(client, "/twilio/voice", CALL)
    assert response.status_code == 200 and response.mimetype == "text/xml"
    root = ET.fromstring(response.data)
    assert root.tag == "Response"
    assert root.find("Dial").text == cfg.fallback.dial
    # the session was still opened, so the call gets a record when it ends
    assert redis.hget("ivr:call:{%s}" % CALL["CallSid"], "hotline") == "ko"


def test_redis_down_still_answers_twiml_that_reaches_a_human(cfg, tmp_path):
    dead = connect(f"unix://{tmp_path}/no-such-redis.sock")
    client = app_with(cfg, dead).test_client()
    for path in ("/twilio/voice", "/twilio/listened", "/twilio/dialed", "/twilio/queued"):
        response = signed_post(client, path, CALL)
        assert response.status_code == 200, path
        root = ET.fromstring(response.data)
        assert root.find("Dial").text == cfg.fallback.dial, path


def test_redis_down_a_queued_caller_leaves_the_queue_and_reaches_a_human(cfg, tmp_path):
    """A wait document may not <Dial>: it leaves, and the <Enqueue> action dials the fallback."""
    client = app_with(cfg, connect(f"unix://{tmp_path}/no-such-redis.sock")).test_client()
    response = signed_post(client, "/twilio/wait", dict(CALL, QueuePosition="1", QueueTime="30"))
    assert response.status_code == 200
    root = ET.fromstring(response.data)
    assert [child.tag for child in root] == ["Leave"]
    response = signed_post(client, "/twilio/queued", dict(CALL, QueueResult="leave", QueueTime="30"))
    assert ET.fromstring(response.data).find("Dial").text == cfg.fallback.dial


def test_redis_down_the_agent_leg_and_status_callback_never_ring_the_fallback(cfg, tmp_path):
    client = app_with(cfg, connect(f"unix://{tmp_path}/no-such-redis.sock")).test_client()
    leg = dict(CALL, CallSid="CA00000000000000000000000000000002", ParentCallSid=CALL["CallSid"])
    for path, params in (("/twilio/answered?call=%s&agent=minji" % CALL["CallSid"], leg),
                         ("/twilio/status", dict(CALL, CallStatus="completed", CallDuration="40"))):
        response = signed_post(client, path, params)
        assert response.status_code == 200, path
        root = ET.fromstring(response.data)
        assert root.tag == "Response" and root.find("Dial") is None, path


def test_malformed_webhook_without_call_sid_gets_fallback_twiml(cfg, redis):
    client = app_with(cfg, connect(cfg.redis.url)).test_client()
    response = signed_post(client, "/twilio/voice", {"From": "+1"})
    assert response.status_code == 200
    assert ET.fromstring(response.data).find("Dial").text == cfg.fallback.dial


def test_a_duplicate_delivery_waits_for_the_first_answer_instead_of_routing_again(redis):
    """Two deliveries of one webhook at once (a slow first answer, Twilio or a proxy repeating
    it): the answer is built once, and both get it."""
    import threading
    import time
    from types import SimpleNamespace

    from ivr.telephony import webhooks

    ctx = SimpleNamespace(redis=redis, keys=Keys("ivr"))
    built, started = [], threading.Event()

    def build():  # stands for routing the call: reserving an agent must happen once
        built.append(1)
        started.set()
        time.sleep(0.5)
        return f"<Response><Say>answer {len(built)}</Say></Response>"

    answers = []
    first = threading.Thread(target=lambda: answers.append(webhooks._remember(ctx, "CA1", "dialed:x", build)))
    first.start()
    assert started.wait(5)
    second = webhooks._remember(ctx, "CA1", "dialed:x", build)  # arrives while the first builds
    first.join(5)
    assert built == [1]
    assert answers == [second] == ["<Response><Say>answer 1</Say></Response>"]


def test_a_webhook_whose_answer_failed_is_built_again_on_the_retry(redis):
    from types import SimpleNamespace

    from ivr.telephony import webhooks

    ctx = SimpleNamespace(redis=redis, keys=Keys("ivr"))

    def broken():
        raise ConnectionError("router gone")

    with pytest.raises(ConnectionError):
        webhooks._remember(ctx, "CA1", "listened:0", broken)
    # the claim went with the failure: Twilio's retry is answered, not kept waiting
    assert webhooks._remember(ctx, "CA1", "listened:0", lambda: "<Response/>") == "<Response/>"
    assert redis.get(Keys("ivr").webhook_seen("CA1", "listened:0")) == "<Response/>"


@pytest.mark.parametrize("dial_status", ["completed", "answered"])
def test_a_dial_the_agent_picked_up_ends_the_call_politely_not_routed_again(cfg, redis, dial_status):
    client = app_with(cfg, connect(cfg.redis.url)).test_client()
    assert signed_post(client, "/twilio/voice", CALL).status_code == 200
    # the call as it stands while its <Dial> rings the agent
    redis.hset("ivr:call:{%s}" % CALL["CallSid"], mapping={"state": "connecting", "agent": "minji",
                                                           "agent_address": "client:minji"})
    done = dict(CALL, CallStatus="in-progress", DialCallStatus=dial_status, DialCallDuration="42",
                DialCallSid="CA00000000000000000000000000000099")
    root = ET.fromstring(signed_post(client, "/twilio/dialed", done).data)
    assert root.find("Hangup") is not None and root.find("Dial") is None  # not dialled anew
    assert redis.hget("ivr:call:{%s}" % CALL["CallSid"], "outcome") == "answered"


def test_a_partial_transcript_for_a_call_that_is_gone_leaves_no_key_behind(redis):
    from ivr.telephony.sessions import SessionStore

    store = SessionStore(redis, Keys("ivr"), 600)
    store.set_partial("CAgone", "결제가")  # a stream outliving its call's grace
    assert not redis.exists(Keys("ivr").call("CAgone"))
    store.create("CAhere", hotline="ko", language="ko", caller="+821012345678", to="+8215880000", token="t")
    ttl = redis.ttl(Keys("ivr").call("CAhere"))
    store.set_partial("CAhere", "결제가 두 번")
    assert redis.hget(Keys("ivr").call("CAhere"), "partial") == "결제가 두 번"
    assert 0 < redis.ttl(Keys("ivr").call("CAhere")) <= ttl
