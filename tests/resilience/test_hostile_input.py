"""Hostile input beyond the webhook fuzzing of tests/telephony: YAML files, oversize bodies,
Media Stream floods, and the bearer token on every API and ops route.

(tests/telephony/test_hostile_input.py fuzzes Media Stream messages one by one and
webhook parameters; test_webhook_safety.py checks signatures and the fallback.)
"""

from __future__ import annotations

import base64
import json
import socket
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from tests.resilience.conftest import API_TOKEN, KO, PUBLIC_URL, SPEECH, TWILIO_TOKEN, on_shift, wait_for

ROOT = Path(__file__).resolve().parents[2]
CONFIG_TEXT = (ROOT / "config.yaml").read_text(encoding="utf-8")
RULES_TEXT = (ROOT / "routing" / "rules.yaml").read_text(encoding="utf-8")
AGENTS_TEXT = (ROOT / "routing" / "agents.yaml").read_text(encoding="utf-8")

# --- YAML files ------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=12)
trees = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(
    st.text(max_size=10) | st.sampled_from(["server", "port", "queues", "agents", "skills", "id", "hotlines",
                                            "categories", "numbers", "relax", "after_s", "hours", "weekly"]),
    kids, max_size=4), max_leaves=15)


@st.composite
def mutated(draw, text: str):
    """The real file with a few lines deleted, duplicated, re-indented or given a junk value."""
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["delete", "duplicate", "indent", "value", "junk"]))
        if action == "delete":
            del lines[i]
        elif action == "duplicate":
            lines.insert(i, lines[i])
        elif action == "indent":
            lines[i] = " " * draw(st.integers(1, 3)) + lines[i]
        elif action == "value" and ":" in lines[i]:
            key = lines[i].split(":", 1)[0]
            value = draw(st.sampled_from(["", "-1", "1e309", "[]", "{}", "null", "'x'", "&a [*a]", "!!python/object:os.system",
                                          "99999999999999999999", "\"\\x00\"", "[1, [2, [3]]]", "no"]))
            lines[i] = f"{key}: {value}"
        else:
            lines.insert(i, draw(st.text(max_size=20)))
    return "\n".join(lines)


def yaml_texts(real: str):
    return st.one_of(mutated(real), st.text(max_size=200),
                     trees.map(lambda t: yaml.safe_dump(t, allow_unicode=True)))


SAFE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])


def _clear(exc: Exception, name: str) -> None:
    message = str(exc)
    assert message.strip(), "an error must say what is wrong"
    assert name in message, message  # it names the file


@SAFE
@given(text=yaml_texts(CONFIG_TEXT))
def test_config_yaml_of_any_shape_gives_a_clear_error_or_a_config(tmp_path_factory, text):
    from ivr import config as config_mod

    folder = tmp_path_factory.mktemp("cfg")
    (folder / "config.yaml").write_text(text, encoding="utf-8")
    try:
        config_mod.load(folder / "config.yaml", env={})
    except config_mod.ConfigError as exc:
        _clear(exc, "config.yaml")


@SAFE
@given(rules=yaml_texts(RULES_TEXT), agents=st.one_of(st.just(AGENTS_TEXT), yaml_texts(AGENTS_TEXT)))
def test_rules_and_roster_of_any_shape_give_a_clear_error_or_rules(rules, agents):
    from ivr.routing import rules as rules_mod

    try:
        rules_mod.parse(rules, agents, "rules.yaml", "agents.yaml")
    except rules_mod.RulesError as exc:
        _clear(exc, ".yaml")


@pytest.mark.parametrize("text", [
    "a: &a [*a]\n",  # a list that contains itself
    "queues: &q {general: *q}\n",
    "lol: &a [x, x, x, x, x, x, x, x, x]\nlol2: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "lol3: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nlol4: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
    "!!python/object/apply:os.system ['true']\n",
    "\ufeffserver: {port: 1}\n",
    "- just\n- a list\n",
    "server:\n  port: 8080\nserver:\n  port: 9090\n",
])
def test_hostile_yaml_constructs_are_refused_with_a_message(tmp_path, text):
    from ivr import config as config_mod
    from ivr.routing import rules as rules_mod

    (tmp_path / "config.yaml").write_text(text, encoding="utf-8")
    for load in (lambda: config_mod.load(tmp_path / "config.yaml", env={}),
                 lambda: rules_mod.parse(text, AGENTS_TEXT, "rules.yaml", "agents.yaml"),
                 lambda: rules_mod.parse(RULES_TEXT, text, "rules.yaml", "agents.yaml")):
        with pytest.raises((config_mod.ConfigError, rules_mod.RulesError)) as info:
            load()
        _clear(info.value, ".yaml")


# --- oversize requests ---------------------------------------------------------------


def _raw_post(url: str, path: str, headers: dict[str, str], first_bytes: bytes, timeout_s: float = 10.0) -> str:
    """Send headers and only the first bytes of a body; return the status line the server answers with."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout_s) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        sock.sendall(head.encode() + b"\r\n" + first_bytes)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.split(b"\r\n", 1)[0].decode(errors="replace")


@pytest.fixture
def served(tmp_path, redis_server, redis, servers):
    """A real `ivr serve` (gunicorn) process on the shared Redis."""
    from tests.resilience.conftest import pretrain, write_config

    config = write_config(tmp_path / "cfg", agents=1)
    pretrain(config, redis_server.url)
    return servers(config, redis_server.url)


def test_oversize_requests_are_refused_before_the_body_is_read(served):
    big = 50 * 1024 * 1024  # announced, never sent: a server reading it first would time out
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC_URL + "/twilio/voice", {})
    for path, headers in (
        ("/twilio/voice", {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}),
        ("/twilio/listened", {"Content-Type": "application/x-www-form-urlencoded"}),
        ("/api/agents/bench01/status", {"Content-Type": "application/json", "Authorization": f"Bearer {API_TOKEN}"}),
        ("/ops/login", {"Content-Type": "application/x-www-form-urlencoded"}),
    ):
        started = time.monotonic()
        status = _raw_post(served.url, path, dict(headers, **{"Content-Length": str(big)}), b"CallSid=CA1&x=" + b"y" * 1000)
        assert " 413 " in status + " ", (path, status)
        assert time.monotonic() - started < 10
    # and the server is fine afterwards
    assert requests.get(served.url + "/healthz", timeout=5).status_code == 200


def test_chunked_body_over_the_limit_is_refused(served):
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC_URL + "/twilio/voice", {})

    def body():
        for _ in range(200):
            yield b"x" * 4096  # 800 KB, far over server.max_request_bytes, without a Content-Length

    resp = requests.post(served.url + "/twilio/voice", data=body(), timeout=20, headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})
    assert resp.status_code in (403, 413), resp.status_code  # never 200 nor 500
    assert requests.get(served.url + "/healthz", timeout=5).status_code == 200


# --- Media Stream floods -------------------------------------------------------------


def _open_stream(h, sid: str, media_format: dict | None = None):
    import websocket

    validator = RequestValidator(TWILIO_TOKEN)
    params = {"CallSid": sid, "AccountSid": "AC1", "From": "+821012345678", "To": KO, "CallStatus": "ringing"}
    sig = validator.compute_signature(PUBLIC_URL + "/twilio/voice", params)
    voice = ET.fromstring(requests.post(h.url + "/twilio/voice", data=params, timeout=10,
                                        headers={"X-Twilio-Signature": sig}).text)
    stream = voice.find("Connect/Stream")
    token = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}["token"]
    ws = websocket.create_connection(h.url.replace("http", "ws") + urlsplit(stream.get("url")).path, timeout=30,
                                     header={"X-Twilio-Signature": validator.compute_signature(stream.get("url"), {})})
    ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
    ws.send(json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1", "start": {
        "streamSid": "MZ1", "callSid": sid, "accountSid": "AC1", "tracks": ["inbound"],
        "customParameters": {"token": token, "hotline": "ko"},
        "mediaFormat": media_format or {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}))
    return ws, params


def _connect_action(h, params) -> ET.Element:
    data = dict(params, CallStatus="in-progress")
    sig = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC_URL + "/twilio/listened", data)
    resp = requests.post(h.url + "/twilio/listened", data=data, headers={"X-Twilio-Signature": sig}, timeout=10)
    assert resp.status_code == 200
    return ET.fromstring(resp.text)


def _media(seq, chunk, payload: bytes) -> str:
    return json.dumps({"event": "media", "sequenceNumber": str(seq), "streamSid": "MZ1", "media": {
        "track": "inbound", "chunk": str(chunk), "timestamp": str(chunk * 20),
        "payload": base64.b64encode(payload).decode()}})


def test_a_flood_of_frames_with_wrong_sequence_numbers_is_survived(redis_server, redis, hotlines):
    import random

    import websocket

    h = hotlines(redis_server.url, agents=1)
    on_shift(h.url, "bench01")
    sid = "CA" + "e" * 32
    ws, params = _open_stream(h, sid)
    rng = random.Random(7)
    sent = 0
    started = time.monotonic()
    try:
        for k in range(5000):  # 100 s of audio as fast as the socket takes it (thousands per second)
            seq = rng.choice([k + 2, 1, -5, 10**12, rng.randrange(10**6)])
            payload = bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 160, 160, 160, 999])))
            ws.send(_media(seq, rng.randrange(-3, 10**6), payload))
            sent += 1
    except (websocket.WebSocketException, OSError):
        pass  # the server may end the turn (max_listen_s of audio) and close: that is fine
    rate = sent / max(time.monotonic() - started, 1e-6)
    ws.close()
    wait_for(lambda: h.session(sid).get("speech_outcome"), 30, what="the turn to end")
    assert h.session(sid)["speech_outcome"] in ("max_length", "no_speech", "speech", "stream_end")
    assert _connect_action(h, params).tag == "Response"
    assert requests.get(h.url + "/healthz", timeout=5).status_code == 200
    assert sent > 500 and rate > 200, (sent, rate)  # it really was a flood


def test_huge_and_garbage_messages_end_the_turn_not_the_server(redis_server, redis, hotlines):
    import websocket

    h = hotlines(redis_server.url, agents=1)
    sid = "CA" + "b" * 32
    ws, params = _open_stream(h, sid)
    for junk in ("not json", "{}", '{"event": "media"}', '{"event": "media", "media": {"payload": "%%%"}}',
                 _media(2, 1, b"\xff" * 20000)):  # payload over the 16 KB limit
        ws.send(junk)
    code = None
    try:
        ws.send("x" * (2 * 1024 * 1024))  # one 2 MB message: refused while it arrives
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            code = int.from_bytes(data[:2], "big")
    except (websocket.WebSocketException, OSError):
        code = "dropped"
    assert code in (1009, "dropped"), f"the server should refuse a 2 MB message (got {code})"
    wait_for(lambda: h.session(sid).get("speech_outcome"), 20, what="the turn to end")
    assert _connect_action(h, params).tag == "Response"
    assert requests.get(h.url + "/healthz", timeout=5).status_code == 200


@pytest.mark.parametrize("media_format", [{"encoding": "audio/x-l16", "sampleRate": 16000, "channels": 1},
                                          {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 2}])
def test_a_stream_in_another_audio_format_is_refused_and_the_caller_reaches_a_person(
        redis_server, redis, hotlines, media_format):
    """Decoding anything but 8 kHz mono mu-law as mu-law would hear noise: the turn ends at
    once with its own outcome, and the <Connect> action puts the caller through to a person
    (asking again could not help)."""
    import websocket

    h = hotlines(redis_server.url, agents=1)
    on_shift(h.url, "bench01")
    sid = "CA" + "f" * 31 + str(media_format["channels"])
    ws, params = _open_stream(h, sid, media_format)
    try:
        ws.send(_media(2, 1, b"\x00\x01" * 160))
        ws.recv()  # the server closes the socket
    except (websocket.WebSocketException, OSError):
        pass
    ws.close()
    session = wait_for(lambda: h.session(sid).get("speech_outcome") and h.session(sid), 20, what="the turn to end")
    assert session["speech_outcome"] == "unsupported_audio"
    speech = json.loads(session["speech"])
    assert speech["encoding"] == media_format["encoding"] and speech["sample_rate"] == media_format["sampleRate"]
    answer = _connect_action(h, params)
    assert answer.find("Connect") is None and answer.find("Dial/Client").text == "bench01"


def _signed_post(h, url: str, params: dict) -> ET.Element:
    """POST ``params`` to an absolute URL the server gave (an action URL), signed as Twilio signs."""
    sig = RequestValidator(TWILIO_TOKEN).compute_signature(url, params)
    resp = requests.post(h.url + url.removeprefix(PUBLIC_URL), data=params, timeout=10,
                         headers={"X-Twilio-Signature": sig})
    assert resp.status_code == 200, resp.text
    return ET.fromstring(resp.text)


def _in_use(engine) -> int:
    """Recognizers taken from the test session's pools and not given back."""
    return sum(p.created - p.retired - p.idle - p.finishing for p in engine.pools.values())


def _closed_cleanly(ws) -> bool:
    """The server ended the socket with a close frame (not bytes of some other protocol)."""
    import websocket

    while True:
        opcode, _ = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return True
        if opcode not in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG):
            return False


def test_values_no_field_can_hold_and_a_second_start_are_skipped_not_fatal(redis_server, redis, hotlines, engine):
    # Python's JSON parser takes Infinity and arrays nested past its depth; a second start
    # on the same socket must not take (and orphan) a second recognizer.
    h = hotlines(redis_server.url, agents=1)
    sid = "CA" + "9" * 32
    before = _in_use(engine)
    ws, params = _open_stream(h, sid)
    start_again = json.dumps({"event": "start", "start": {"callSid": sid, "tracks": 5,
                                                          "customParameters": {"token": "x"}}})
    for junk in ('{"event": "media", "sequenceNumber": Infinity, "media": {"payload": "AAAA"}}',
                 '{"event": "media", "media": {"payload": "AAAA", "timestamp": -Infinity}}',
                 "[" * 5000 + "]" * 5000, start_again, _media(2, 1, b"\xff" * 160)):
        ws.send(junk)
    ws.send(json.dumps({"event": "start", "sequenceNumber": "3", "start": {
        "streamSid": "MZ1", "callSid": sid, "accountSid": "AC1", "tracks": ["inbound"],
        "customParameters": {"token": h.session(sid)["token"], "hotline": "ko"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}))
    ws.send(json.dumps({"event": "stop", "sequenceNumber": "4", "streamSid": "MZ1", "stop": {"callSid": sid}}))
    assert _closed_cleanly(ws)
    ws.close()
    wait_for(lambda: h.session(sid).get("speech_outcome"), 20, what="the turn to end")
    assert h.session(sid)["speech_outcome"] in ("no_speech", "stream_end")
    wait_for(lambda: _in_use(engine) == before, 20, what="the recognizer to go back to its pool")
    assert _connect_action(h, params).tag == "Response"


def test_a_caller_who_hangs_up_mid_sentence_keeps_their_words_in_the_call_record(redis_server, redis, hotlines):
    """The hang-up writes the record while the stream is still recognising the caller's last
    words: they reach the ended session after it, and the record is amended with them."""
    from ivr.ops.records import find_record, read_records
    from ivr.telephony.wavstream import frames, read_wav

    h = hotlines(redis_server.url, agents=1)
    sid = "CA" + "8" * 32
    ws, params = _open_stream(h, sid)
    audio = read_wav(SPEECH / "ko_kw_game.wav")  # 0.5 s of silence, "게임 게임", 1.5 s of silence
    for k, chunk in enumerate(frames(audio[:len(audio) - 12800])):  # cut 0.1 s before the phrase ends
        ws.send(_media(k + 2, k + 1, chunk))
    hung_up = dict(params, CallStatus="completed", CallDuration="4")
    assert _signed_post(h, PUBLIC_URL + "/twilio/status", hung_up).tag == "Response"
    assert h.session(sid)["state"] == "ended"
    written = find_record(redis, h.keys, sid, scan=False)
    assert written is not None and written["duration_s"] == 4.0
    ws.send(json.dumps({"event": "stop", "sequenceNumber": "9999", "streamSid": "MZ1", "stop": {"callSid": sid}}))
    try:
        ws.recv()
    except Exception:
        pass
    ws.close()
    session = wait_for(lambda: h.session(sid).get("speech_outcome") and h.session(sid), 30, what="the words stored")
    assert session["state"] == "ended" and session["speech_outcome"] == "stream_end"
    assert json.loads(session["speech"])["turn"] == 0 and session["transcript"]
    record = wait_for(lambda: (find_record(redis, h.keys, sid, scan=False) or {}).get("transcript")
                      and find_record(redis, h.keys, sid, scan=False), 10, what="the record amended")
    assert record["transcript"] == session["transcript"] and record["speech"]["outcome"] == "stream_end"
    assert record["outcome"] == "hung_up_while_listening" and record["duration_s"] == 4.0
    assert record["record_id"] == written["record_id"]  # amended in its place
    # one record for the call, not two
    assert [r["sid"] for r in read_records(redis, h.keys)].count(sid) == 1
    # the amended session kept the short grace of an ended call
    assert 0 < redis.ttl(h.keys.call(sid)) <= 600


def test_a_turn_whose_stream_never_came_moves_the_call_on(redis_server, redis, hotlines):
    """Each <Connect action> names its turn: when the second listening's stream never opens
    (a dropped socket, a restart), its action is a new turn, not the first one's answer again."""
    import websocket

    h = hotlines(redis_server.url, agents=1)
    on_shift(h.url, "bench01")
    sid = "CA" + "7" * 32
    ws, params = _open_stream(h, sid)
    ws.send(json.dumps({"event": "stop", "sequenceNumber": "2", "streamSid": "MZ1", "stop": {"callSid": sid}}))
    try:
        ws.recv()
    except (websocket.WebSocketException, OSError):
        pass
    ws.close()
    wait_for(lambda: h.session(sid).get("speech_outcome"), 20, what="the first turn to end")
    first_action = f"{PUBLIC_URL}/twilio/listened?turn=0"
    asked_again = _signed_post(h, first_action, dict(params, CallStatus="in-progress"))
    second_action = asked_again.find("Connect").get("action")  # nothing heard: asked once more
    assert second_action == f"{PUBLIC_URL}/twilio/listened?turn=1"
    # A retry of the first action still gets the first answer.
    assert ET.tostring(_signed_post(h, first_action, dict(params, CallStatus="in-progress"))) == ET.tostring(asked_again)
    # No stream for the second turn at all: its action puts the caller through to a person.
    answer = _signed_post(h, second_action, dict(params, CallStatus="in-progress"))
    assert answer.find("Connect") is None and answer.find("Dial/Client").text == "bench01"


@pytest.mark.parametrize("duration", ["12.5s", "inf", "-3", "NaN"])
def test_a_status_callback_with_a_broken_duration_still_ends_the_call(redis_server, redis, hotlines, duration):
    h = hotlines(redis_server.url, agents=1)
    sid = "CA" + "6" * 32
    ws, params = _open_stream(h, sid)
    ws.close()
    done = dict(params, CallStatus="completed", CallDuration=duration)
    assert _signed_post(h, PUBLIC_URL + "/twilio/status", done).tag == "Response"
    assert h.session(sid)["state"] == "ended"
    assert redis.zscore(h.keys.live_calls(), sid) is None


# --- the bearer token on every route ---------------------------------------------------

PUBLIC_ROUTES = {"/ops/login", "/ops/static/<path:filename>"}  # the login form and its stylesheet


def test_every_api_and_ops_route_refuses_without_the_token(redis_server, redis, hotlines):
    h = hotlines(redis_server.url, agents=1)
    app_rules = [r for r in h.app.url_map.iter_rules() if r.rule.startswith(("/api", "/ops"))]
    assert len(app_rules) >= 10, [r.rule for r in app_rules]  # the enumeration found the surface
    checked = []
    for rule in app_rules:
        if rule.rule in PUBLIC_ROUTES:
            continue
        path = rule.rule
        for name in rule.arguments:
            path = path.replace(f"<{name}>", "bench01").replace(f"<path:{name}>", "x")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Basic {API_TOKEN}"},
                            {"Authorization": "Bearer "}, {"Cookie": "ivr_ops=forged.cookie.value"}):
                resp = requests.request(method, h.url + path, headers=headers, timeout=10, allow_redirects=False,
                                        json={"status": "available", "category": "payment"}, stream=True)
                status = resp.status_code
                resp.close()
                assert status in (401, 403), (method, path, headers, status)
                checked.append((method, path))
    assert h.agents()["bench01"]["state"] == "offline"  # nothing changed through any of them
    assert ("POST", "/api/agents/bench01/status") in checked and ("GET", "/ops/snapshot.json") in checked


def test_a_settled_turn_whose_store_fails_still_gives_its_recognizer_back(redis_server, redis, hotlines, engine,
                                                                          tmp_path):
    """The words settle the call early (the final pass is left for after the socket), then
    storing the turn fails (here its WAV cannot be written: the recordings folder is a file,
    as a full or read-only disk would fail it). The final pass still runs, so the recognizer
    goes back to its pool instead of being held, and counted as finishing, for good."""
    from ivr.telephony.wavstream import frames, read_wav

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the recordings folder should be")

    def record_into_a_file(data):
        data.setdefault("calls", {}).update(record_audio=True, recordings_dir=str(blocked))

    h = hotlines(redis_server.url, agents=1, edit=record_into_a_file)
    before = _in_use(engine)
    finishing = sum(p.finishing for p in engine.pools.values())
    sid = "CA" + "5" * 32
    ws, params = _open_stream(h, sid)
    for k, chunk in enumerate(frames(read_wav(SPEECH / "ko_kw_fee.wav"))):  # "요금 요금": settles at once
        ws.send(_media(k + 2, k + 1, chunk))
    ws.send(json.dumps({"event": "stop", "sequenceNumber": "9999", "streamSid": "MZ1", "stop": {"callSid": sid}}))
    try:
        ws.recv()
    except Exception:
        pass
    ws.close()
    wait_for(lambda: _in_use(engine) == before, 30, what="the recognizer to go back to its pool")
    assert sum(p.finishing for p in engine.pools.values()) == finishing


def test_a_reprompt_whose_stream_never_came_is_not_routed_on_the_first_turns_words(redis_server, redis, hotlines):
    """Asked again because the first words were unsure, the caller's second stream never
    opens: nothing was heard on that turn, so the call goes to a person, not to the queue of
    the first turn's guess as if the caller had confirmed it."""
    from ivr.telephony.sessions import SessionStore

    h = hotlines(redis_server.url, agents=1)
    on_shift(h.url, "bench01")
    sid = "CA" + "4" * 32
    ws, params = _open_stream(h, sid)
    ws.close()
    # the first turn's stream stored words the model is unsure of (as media.py stores them)
    SessionStore(redis, h.keys, 600).update(sid, "understanding", speech_outcome="speech",
                                            transcript="비밀번호 결제", speech={"turn": 0})
    asked_again = _signed_post(h, f"{PUBLIC_URL}/twilio/listened?turn=0", dict(params, CallStatus="in-progress"))
    assert asked_again.find("Connect") is not None  # re-prompted: the premise of this test
    answer = _signed_post(h, f"{PUBLIC_URL}/twilio/listened?turn=1", dict(params, CallStatus="in-progress"))
    session = h.session(sid)
    assert session["transcript"] == "" and json.loads(session["transcripts"]) == ["비밀번호 결제"]
    assert answer.find("Dial/Client").text == "bench01" and session.get("queue") != "billing"
