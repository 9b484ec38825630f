"""The agent's call API over HTTP: look a call up, correct its category (the feedback loop).

A real app on the real Redis, the call opened and closed by signed Twilio webhooks; the
category correction is read back the way ``ivr intents train --with-feedback`` reads it.
"""

from __future__ import annotations

import pytest
from twilio.request_validator import RequestValidator

from ivr.app import create_app
from ivr.config import load
from ivr.keys import Keys
from ivr.services import Services
from ivr.store import Store, connect
from ivr.telephony.sessions import SessionStore

TWILIO_TOKEN = "test-twilio-token"
PUBLIC = "https://hotline.example.test"
API_TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
CALLER = "+821012345678"
SID = "CA00000000000000000000000000000042"


@pytest.fixture
def hotline(config_file, redis, redis_url, clean_env, trained_classifier):
    cfg = load(config_file, env={"TWILIO_AUTH_TOKEN": TWILIO_TOKEN, "IVR_PUBLIC_URL": PUBLIC,
                                 "REDIS_URL": redis_url, "IVR_API_TOKEN": API_TOKEN})
    keys = Keys(cfg.redis.key_prefix)
    services = Services(config=cfg, store=Store(connect(redis_url), cfg.redis.key_prefix), keys=keys,
                        classifier=trained_classifier)
    services.problems.update(speech="not loaded in this test", routing="not loaded in this test")
    client = create_app(cfg, services).test_client()
    client.cfg, client.keys, client.sessions = cfg, keys, SessionStore(redis, keys, 600)
    yield client
    services.store.close()


def twilio(client, path, **params):
    params = {"AccountSid": "AC1", "CallSid": SID, **params}
    sig = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC + path, params)
    response = client.post(path, data=params, headers={"X-Twilio-Signature": sig})
    assert response.status_code == 200, response.data
    return response


def ring(client, said="결제가 두 번 됐어요", category="payment"):
    """A caller rings in; what they said is stored on the session as the media stream stores it."""
    twilio(client, "/twilio/voice", From=CALLER, To="+8215880000", CallStatus="ringing", Direction="inbound")
    client.sessions.update(SID, None, transcript=said, category=category, confidence=0.61)


def corrections(client):
    """What `ivr intents train --with-feedback` folds in (its own reader, on the config's Redis)."""
    from ivr.intents.cli import _read_feedback

    return _read_feedback(client.cfg)


def test_agent_sees_the_callers_real_number_while_the_call_lasts_and_the_record_masks_it(hotline, redis):
    from ivr.ops.records import find_record

    ring(hotline)
    live = hotline.get(f"/api/calls/{SID}", headers=AUTH)
    assert live.status_code == 200 and live.json["live"] is True
    assert live.json["call"]["caller"] == CALLER and "token" not in live.json["call"]
    twilio(hotline, "/twilio/status", CallStatus="completed", CallDuration="42")
    over = hotline.get(f"/api/calls/{SID}", headers=AUTH)
    assert over.status_code == 200 and over.json["live"] is False
    shown = over.json["call"]["caller"]
    assert shown == find_record(redis, hotline.keys, SID)["caller"]
    assert shown.startswith("+82") and shown.endswith("5678") and "10123" not in shown and shown != CALLER


def test_category_correction_is_stored_where_training_with_feedback_reads_it(hotline):
    ring(hotline, said="비밀번호를 바꾸고 싶어요", category="payment")
    response = hotline.post(f"/api/calls/{SID}/category", json={"category": "account_security"}, headers=AUTH)
    assert response.status_code == 200
    assert response.json == {"sid": SID, "predicted": "payment", "corrected": "account_security", "stored": True}
    learned = corrections(hotline)
    assert [(e.language, e.category, e.text) for e in learned] == [("ko", "account_security", "비밀번호를 바꾸고 싶어요")]
    # after the call, the record answers; a second opinion on the same words replaces the first
    twilio(hotline, "/twilio/status", CallStatus="completed", CallDuration="30")
    again = hotline.post(f"/api/calls/{SID}/category", json={"category": "human"}, headers=AUTH)
    assert again.status_code == 200 and again.json["corrected"] == "human"
    assert [(e.category, e.text) for e in corrections(hotline)] == [("human", "비밀번호를 바꾸고 싶어요")]


def test_the_call_record_keeps_the_agents_correction(hotline, redis):
    from ivr.ops.records import find_record, read_records

    ring(hotline, said="비밀번호를 바꾸고 싶어요", category="payment")
    assert hotline.post(f"/api/calls/{SID}/category", json={"category": "account_security"},
                        headers=AUTH).status_code == 200
    twilio(hotline, "/twilio/status", CallStatus="completed", CallDuration="30")
    record = find_record(redis, hotline.keys, SID)
    assert record["category"] == "payment" and record["corrected_category"] == "account_security"
    # corrected once the call is over: the record itself is amended, still one record
    assert hotline.post(f"/api/calls/{SID}/category", json={"category": "human"}, headers=AUTH).status_code == 200
    assert find_record(redis, hotline.keys, SID)["corrected_category"] == "human"
    redis.delete(hotline.keys.call(SID))  # the session's grace is over: only the record is left
    assert hotline.post(f"/api/calls/{SID}/category", json={"category": "complaint"}, headers=AUTH).status_code == 200
    assert [(r["sid"], r["corrected_category"]) for r in read_records(redis, hotline.keys)] == [(SID, "complaint")]
    assert hotline.get(f"/api/calls/{SID}", headers=AUTH).json["call"]["corrected_category"] == "complaint"
    assert not redis.exists(hotline.keys.call(SID))  # no session made again by the correction


def test_a_correction_made_as_the_hang_up_writes_the_record_reaches_it(hotline, redis):
    """The call is ended but its record not yet written (the status callback is half way):
    the correction waits for that record and amends it, rather than be left off it."""
    import threading
    import time

    from ivr.ops.records import find_record
    from ivr.telephony import record
    from ivr.telephony.context import context

    ring(hotline, said="비밀번호를 바꾸고 싶어요", category="payment")
    ended = hotline.sessions.update(SID, "ended", outcome="hung_up_while_listening")  # call_over's first step
    app = hotline.application

    def rest_of_call_over():  # its record, from the session as it read it, a moment later
        time.sleep(0.3)
        with app.test_request_context():
            record.write(context(), ended, 30.0)
        redis.hset(hotline.keys.call(SID), "recorded", "1")

    writer = threading.Thread(target=rest_of_call_over)
    writer.start()
    response = hotline.post(f"/api/calls/{SID}/category", json={"category": "account_security"}, headers=AUTH)
    writer.join(5)
    assert response.status_code == 200
    assert find_record(redis, hotline.keys, SID)["corrected_category"] == "account_security"


def test_unknown_category_is_refused_with_the_known_ones_and_stores_nothing(hotline):
    ring(hotline)
    response = hotline.post(f"/api/calls/{SID}/category", json={"category": "acount_security"}, headers=AUTH)
    assert response.status_code == 400
    error = response.json["error"]
    assert "unknown category 'acount_security'" in error and "account_security" in error and "payment" in error
    bad = hotline.post(f"/api/calls/{SID}/category", data="payment", headers=AUTH)
    assert bad.status_code == 400 and 'send JSON {"category": C}' in bad.json["error"]
    assert corrections(hotline) == []


def test_with_no_model_loaded_a_correction_is_checked_against_the_taxonomy(hotline):
    hotline.application.extensions["hotline"].classifier = None  # still training, say
    ring(hotline)
    typo = hotline.post(f"/api/calls/{SID}/category", json={"category": "acount_security"}, headers=AUTH)
    assert typo.status_code == 400 and "account_security" in typo.json["error"]
    assert corrections(hotline) == []
    fine = hotline.post(f"/api/calls/{SID}/category", json={"category": "account_security"}, headers=AUTH)
    assert fine.status_code == 200 and [e.category for e in corrections(hotline)] == ["account_security"]


def test_correcting_a_call_with_nothing_said_is_refused_clearly(hotline):
    ring(hotline, said="")
    response = hotline.post(f"/api/calls/{SID}/category", json={"category": "payment"}, headers=AUTH)
    assert response.status_code == 422 and "no transcript" in response.json["error"]
    assert corrections(hotline) == []


def test_unknown_call_is_404_for_both_routes(hotline):
    assert hotline.get("/api/calls/CAnope", headers=AUTH).status_code == 404
    response = hotline.post("/api/calls/CAnope/category", json={"category": "payment"}, headers=AUTH)
    assert response.status_code == 404 and response.json["error"] == "no call CAnope"


@pytest.mark.parametrize("method, path", [("get", f"/api/calls/{SID}"), ("post", f"/api/calls/{SID}/category")])
def test_both_call_routes_need_the_bearer_token(hotline, method, path):
    ring(hotline)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": API_TOKEN}):
        response = getattr(hotline, method)(path, json={"category": "account_security"}, headers=headers)
        assert response.status_code == 401, headers
    assert corrections(hotline) == []
