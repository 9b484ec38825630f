"""The Twilio stand-in speaks Twilio's protocol exactly, checked by a tiny fake hotline server.

The fake server below is written from Twilio's docs only: it validates every signature
with the twilio library's RequestValidator (HTTP over the public URL + POST parameters,
the WebSocket upgrade over the wss:// URL as written in the TwiML), records what arrives,
and answers fixed TwiML scenarios.
"""

from __future__ import annotations

import base64
import json
import re
import threading

import numpy as np
import pytest
from flask import Flask, Response, request
from flask_sock import Sock
from simple_websocket import ConnectionClosed
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Connect, Dial, VoiceResponse

from ivr.telephony import wavstream
from ivr.telephony.standin import AgentBehaviour, TwilioStandIn
from ivr.telephony.testserver import serve_in_thread

TOKEN = "fake-server-auth-token"
PUBLIC = "https://hotline.example.test"
STREAM_URL = "wss://hotline.example.test/twilio/stream"


class FakeHotline:
    """A minimal Twilio-facing server with scripted answers."""

    def __init__(self, scenario: str, close_after_media: int | None = 40, leave_on_poll: int = 3,
                 wait_for_echo: bool = False):
        self.scenario = scenario
        self.wait_for_echo = wait_for_echo  # keep the stream open until our mark comes back
        self.close_after_media = close_after_media  # None: never close the stream
        self.leave_on_poll = leave_on_poll
        self.requests: list[dict] = []  # {"path", "url", "form", "signed"}
        self.ws_messages: list[dict] = []
        self.ws_signed: list[bool] = []
        self.events: list[str] = []  # order of what happened: http paths and "ws-closed"
        self.lock = threading.Lock()
        self.polls = 0
        self.app = self._build()

    def hits(self, path: str) -> list[dict]:
        return [r for r in self.requests if r["path"] == path]

    def _build(self) -> Flask:
        app = Flask("fake-hotline")
        sock = Sock(app)
        validator = RequestValidator(TOKEN)
        fake = self

        @app.before_request
        def check():
            sig = request.headers.get("X-Twilio-Signature", "")
            if request.path == "/twilio/stream":
                ok = validator.validate(STREAM_URL, {}, sig)
                fake.ws_signed.append(ok)
            else:
                url = PUBLIC + (request.full_path if request.query_string else request.path)
                ok = validator.validate(url, request.form.to_dict(), sig)
                with fake.lock:
                    fake.requests.append({"path": request.path, "url": url, "args": request.args.to_dict(),
                                          "form": request.form.to_dict(), "signed": ok})
                    fake.events.append(request.path)
            if not ok:
                return Response("forged", status=403)
            return None

        def xml(resp) -> Response:
            return Response(str(resp), mimetype="text/xml")

        @app.post("/twilio/voice")
        def voice():
            resp = VoiceResponse()
            if fake.scenario == "invalid":
                return Response("<Respons><Say>oops</Say></Respons>", mimetype="text/xml")
            if fake.scenario == "error":
                return Response("boom", status=500)
            if fake.scenario == "redirect":
                resp.say("One moment.")
                resp.redirect("redirected")  # relative: resolved against /twilio/voice
                return xml(resp)
            if fake.scenario == "hangup":
                resp.say("We are closed.")
                resp.hangup()
                resp.say("never played")
                return xml(resp)
            resp.say("Hello, tell me what the problem is.")
            connect = Connect(action=PUBLIC + "/twilio/listened", method="POST")
            stream = connect.stream(url=STREAM_URL)
            stream.parameter(name="token", value="tok-123")
            stream.parameter(name="hotline", value="en")
            resp.append(connect)
            return xml(resp)

        @app.post("/twilio/redirected")
        def redirected():
            resp = VoiceResponse()
            resp.say("Redirected, goodbye.")
            resp.hangup()
            return xml(resp)

        @app.post("/twilio/listened")
        def listened():
            resp = VoiceResponse()
            if fake.scenario == "queue":
                resp.enqueue("payment", wait_url="/twilio/wait", wait_url_method="POST",
                              action="/twilio/queued", method="POST")
            elif fake.scenario in ("dial", "stream"):
                dial = Dial(action="/twilio/dialed", method="POST", timeout=10)
                dial.client("alice", url=PUBLIC + "/twilio/answered?agent=alice&call=x", method="POST")
                resp.append(dial)
            return xml(resp)

        @app.post("/twilio/answered")
        def answered():
            resp = VoiceResponse()
            resp.say(f"Payment call for {request.args.get('agent')}.")
            return xml(resp)

        @app.post("/twilio/dialed")
        def dialed():
            resp = VoiceResponse()
            if request.form.get("DialCallStatus") == "completed":
                resp.say("Goodbye.")
                resp.hangup()
            else:  # route again: the next agent, by number
                dial = Dial(action="/twilio/dialed", timeout=10)
                dial.number("+15550001111", url="/twilio/answered?agent=bob")
                resp.append(dial)
            return xml(resp)

        @app.post("/twilio/wait")
        def wait():
            fake.polls += 1
            resp = VoiceResponse()
            if fake.polls >= fake.leave_on_poll:
                resp.leave()
            else:
                resp.say(f"You are number {request.form.get('QueuePosition')} in line.")
                resp.pause(length=4)
            return xml(resp)

        @app.post("/twilio/queued")
        def queued():
            resp = VoiceResponse()
            if request.form.get("QueueResult") == "leave":
                dial = Dial(action="/twilio/dialed")
                dial.client("carol")
                resp.append(dial)
            return xml(resp)

        @app.post("/twilio/status")
        def status():
            return xml(VoiceResponse())

        @sock.route("/twilio/stream")
        def stream(ws):
            media, awaiting_echo = 0, False
            while True:
                raw = ws.receive(timeout=10)
                if raw is None:
                    break
                msg = json.loads(raw)
                fake.ws_messages.append(msg)
                if msg["event"] == "start":
                    sid = msg["streamSid"]
                    try:  # an accelerated caller may already have hung up and closed: keep reading
                        ws.send(json.dumps({"event": "media", "streamSid": sid,
                                            "media": {"payload": base64.b64encode(b"\xff" * 160).decode()}}))
                        ws.send(json.dumps({"event": "mark", "streamSid": sid, "mark": {"name": "greeting-done"}}))
                        ws.send(json.dumps({"event": "clear", "streamSid": sid}))
                    except ConnectionClosed:
                        continue
                    awaiting_echo = fake.wait_for_echo  # Twilio answers a mark once the audio before it played
                if msg["event"] == "mark":
                    awaiting_echo = False
                if msg["event"] == "stop":
                    break
                if msg["event"] == "media":
                    media += 1
                    if fake.close_after_media is not None and media >= fake.close_after_media and not awaiting_echo:
                        break
            fake.events.append("ws-closed")

        return app


@pytest.fixture
def serve():
    stops = []

    def start(fake: FakeHotline) -> TwilioStandIn:
        base, stop = serve_in_thread(fake.app)
        stops.append(stop)
        return TwilioStandIn(PUBLIC, TOKEN, connect_to=base, speed=0, max_silence_s=5, close_wait_s=2)

    yield start
    for stop in stops:
        stop()


def tone(seconds: float, rate: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)


def mulaw_tone(seconds: float) -> bytes:
    return wavstream.encode_mulaw(tone(seconds))


# --- HTTP webhooks ------------------------------------------------------------------------

def test_voice_webhook_is_signed_over_the_public_url_with_twilio_parameters(serve):
    fake = FakeHotline("hangup")
    trace = serve(fake).place_call(None, from_="+821012345678", to="+8215880000")
    voice = fake.hits("/twilio/voice")[0]
    assert voice["signed"] is True
    form = voice["form"]
    assert re.fullmatch(r"CA[0-9a-f]{32}", form["CallSid"])
    assert re.fullmatch(r"AC[0-9a-f]{32}", form["AccountSid"])
    assert (form["From"], form["To"], form["Caller"], form["Called"]) == \
        ("+821012345678", "+8215880000", "+821012345678", "+8215880000")
    assert (form["CallStatus"], form["Direction"], form["ApiVersion"]) == ("ringing", "inbound", "2010-04-01")
    assert form["FromCountry"] == "KR"
    assert trace.requests[0].url == PUBLIC + "/twilio/voice"
    assert trace.requests[0].sent_to.startswith("http://127.0.0.1:")


def test_hangup_ends_the_call_and_the_status_callback_reports_it(serve):
    fake = FakeHotline("hangup")
    trace = serve(fake).place_call(None)
    assert trace.says == ["We are closed."]  # nothing after <Hangup> plays
    assert trace.outcome == "ended by <Hangup>" and trace.hung_up_by == "twiml"
    assert [r["path"] for r in fake.requests] == ["/twilio/voice", "/twilio/status"]
    status = fake.hits("/twilio/status")[0]
    assert status["signed"] and status["form"]["CallStatus"] == "completed"
    assert status["form"]["CallDuration"].isdigit()
    assert status["form"]["CallSid"] == trace.call_sid


def test_relative_redirect_is_resolved_against_the_document_url(serve):
    fake = FakeHotline("redirect")
    trace = serve(fake).place_call(None)
    redirected = fake.hits("/twilio/redirected")
    assert len(redirected) == 1 and redirected[0]["signed"]
    assert redirected[0]["form"]["CallStatus"] == "in-progress"
    assert trace.says == ["One moment.", "Redirected, goodbye."]
    assert trace.verb_names() == ["Say", "Redirect", "Say", "Hangup"]


@pytest.mark.parametrize("scenario, expected", [("invalid", "invalid TwiML"), ("error", "HTTP 500")])
def test_unusable_answers_are_recorded_as_errors_and_the_call_still_ends_properly(serve, scenario, expected):
    fake = FakeHotline(scenario)
    trace = serve(fake).place_call(None)
    assert trace.outcome == "application error"
    assert any(expected in e for e in trace.errors)
    assert fake.hits("/twilio/status")[0]["form"]["CallStatus"] == "completed"


def test_forged_http_signature_is_refused_by_a_validating_server(serve):
    fake = FakeHotline("stream")
    trace = serve(fake).place_call(mulaw_tone(0.2), forge={"voice"})
    assert trace.requests[0].status == 403
    assert fake.hits("/twilio/voice")[0]["signed"] is False
    assert fake.ws_messages == []
    assert fake.hits("/twilio/status")[0]["signed"] is True  # only the voice request was forged


# --- the Media Stream ---------------------------------------------------------------------

def test_media_stream_messages_follow_twilio_protocol(serve):
    fake = FakeHotline("stream", close_after_media=30)
    audio = mulaw_tone(0.2)  # 10 frames, then line silence
    trace = serve(fake).place_call(audio)
    assert fake.ws_signed == [True]
    msgs = fake.ws_messages
    assert msgs[0] == {"event": "connected", "protocol": "Call", "version": "1.0.0"}
    start = msgs[1]
    assert start["event"] == "start" and start["sequenceNumber"] == "1"
    sid = start["streamSid"]
    assert re.fullmatch(r"MZ[0-9a-f]{32}", sid) and start["start"]["streamSid"] == sid
    assert start["start"]["callSid"] == trace.call_sid
    assert start["start"]["accountSid"] == trace.account_sid
    assert start["start"]["tracks"] == ["inbound"]
    assert start["start"]["customParameters"] == {"token": "tok-123", "hotline": "en"}
    assert start["start"]["mediaFormat"] == {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
    numbered = msgs[1:]
    assert [m["sequenceNumber"] for m in numbered] == [str(i) for i in range(1, len(numbered) + 1)]
    media = [m for m in msgs if m["event"] == "media"]
    assert len(media) == 30
    assert [m["media"]["chunk"] for m in media] == [str(i) for i in range(1, 31)]
    assert [m["media"]["timestamp"] for m in media] == [str(20 * i) for i in range(30)]
    assert all(m["media"]["track"] == "inbound" and m["streamSid"] == sid for m in media)
    payloads = [base64.b64decode(m["media"]["payload"], validate=True) for m in media]
    assert all(len(p) == 160 for p in payloads)
    assert b"".join(payloads[:10]) == audio
    assert all(p == b"\xff" * 160 for p in payloads[10:])  # silence after the recording
    assert not any(m["event"] == "stop" for m in msgs)  # the server closed: no stop from Twilio
    rec = trace.streams[0]
    # at speed 0 frames race ahead of the server, so more may be sent than it read before closing
    assert (rec.audio_frames, rec.closed_by) == (10, "server") and rec.silence_frames >= 20
    assert rec.url == STREAM_URL and rec.sent_to.startswith("ws://127.0.0.1:")


def test_connect_action_is_requested_only_after_the_server_closes_the_stream(serve):
    fake = FakeHotline("stream", close_after_media=15)
    trace = serve(fake).place_call(mulaw_tone(0.1))
    assert fake.events.index("ws-closed") < fake.events.index("/twilio/listened")
    listened = fake.hits("/twilio/listened")[0]
    assert listened["signed"] and listened["form"]["CallSid"] == trace.call_sid
    assert "speech_end_to_dial_ms" in trace.timings


def test_server_marks_are_echoed_and_its_media_and_clear_accepted(serve):
    fake = FakeHotline("stream", close_after_media=20, wait_for_echo=True)
    trace = serve(fake).place_call(mulaw_tone(0.2), speed=5)
    echoes = [m for m in fake.ws_messages if m["event"] == "mark"]
    assert len(echoes) == 1 and echoes[0]["mark"] == {"name": "greeting-done"}
    assert echoes[0]["sequenceNumber"].isdigit() and echoes[0]["streamSid"] == fake.ws_messages[1]["streamSid"]
    rec = trace.streams[0]
    assert rec.marks_echoed == ["greeting-done"]
    assert rec.server_events == {"media": 1, "mark": 1, "clear": 1}
    assert rec.server_media_bytes == 160
    assert not [e for e in trace.errors if e.startswith("stream")]


def test_caller_hanging_up_while_listening_sends_stop_and_no_connect_action(serve):
    fake = FakeHotline("stream", close_after_media=None)
    trace = serve(fake).place_call(mulaw_tone(1.0), hangup_while="listening", hangup_after_s=0.5)
    stop = fake.ws_messages[-1]
    assert stop["event"] == "stop", (trace.render(), [m["event"] for m in fake.ws_messages], trace.streams[0])
    assert stop["stop"] == {"accountSid": trace.account_sid, "callSid": trace.call_sid}
    assert stop["sequenceNumber"] == str(len(fake.ws_messages) - 1)
    assert len([m for m in fake.ws_messages if m["event"] == "media"]) == 25
    assert fake.hits("/twilio/listened") == []
    assert fake.hits("/twilio/status")[0]["form"]["CallStatus"] == "completed"
    assert trace.outcome == "hung up while listening" and trace.hung_up_by == "caller"


def test_a_server_that_never_closes_the_stream_is_reported(serve):
    fake = FakeHotline("stream", close_after_media=None)
    standin = serve(fake)
    standin.max_silence_s, standin.close_wait_s = 0.4, 0.2
    trace = standin.place_call(mulaw_tone(0.1))
    assert trace.streams[0].closed_by == "timeout"
    assert trace.streams[0].silence_frames == 20
    assert any("never closed the media stream" in e for e in trace.errors)
    assert fake.ws_messages[-1]["event"] == "stop"


def test_forged_websocket_signature_is_refused_at_the_upgrade(serve):
    fake = FakeHotline("stream")
    trace = serve(fake).place_call(mulaw_tone(0.2), forge={"websocket"})
    assert fake.ws_signed == [False]
    assert fake.ws_messages == []
    assert trace.streams[0].handshake_status == 403 and trace.streams[0].closed_by == "refused"
    assert all(r["signed"] for r in fake.requests)


def test_accelerated_real_time_pacing_streams_the_same_frames(serve):
    fake = FakeHotline("stream", close_after_media=12)
    standin = serve(fake)
    trace = standin.place_call(mulaw_tone(0.1), speed=20)
    assert len([m for m in fake.ws_messages if m["event"] == "media"]) == 12
    assert trace.streams[0].frames_sent >= 12 and trace.streams[0].closed_by == "server"
    assert trace.connected_to == "client:alice"


# --- Dial: the agent's side ---------------------------------------------------------------

def test_first_agent_not_answering_then_the_next_answering(serve):
    fake = FakeHotline("dial", close_after_media=15)
    trace = serve(fake).place_call(mulaw_tone(0.1), agent_behaviour=["no", AgentBehaviour("answer", talk_s=42)])
    dialed = fake.hits("/twilio/dialed")
    assert [d["form"]["DialCallStatus"] for d in dialed] == ["no-answer", "completed"]
    assert "DialCallDuration" not in dialed[0]["form"]
    assert dialed[1]["form"]["DialCallDuration"] == "42"
    assert all(re.fullmatch(r"CA[0-9a-f]{32}", d["form"]["DialCallSid"]) for d in dialed)
    assert dialed[0]["form"]["DialCallSid"] != dialed[1]["form"]["DialCallSid"]
    assert trace.dial_statuses == ["no-answer", "completed"]
    assert trace.connected_to == "+15550001111"
    assert trace.outcome == "talked to +15550001111"
    # the no-answer agent never picked up, so only bob's url TwiML ran
    answered = fake.hits("/twilio/answered")
    assert [a["args"]["agent"] for a in answered] == ["bob"]
    assert answered[0]["signed"] and answered[0]["form"]["ParentCallSid"] == trace.call_sid
    assert answered[0]["form"]["Direction"] == "outbound-dial"
    assert trace.dials[1].agent_says == ["Payment call for bob."]


def test_answer_url_with_a_query_string_is_signed_over_the_full_url(serve):
    fake = FakeHotline("dial", close_after_media=15)
    trace = serve(fake).place_call(mulaw_tone(0.1), agent_behaviour="yes")
    answered = fake.hits("/twilio/answered")[0]
    assert answered["signed"] and answered["args"] == {"agent": "alice", "call": "x"}
    assert trace.connected_to == "client:alice"
    assert trace.path[-2:] == ["dialed client:alice, answered", "<Hangup>"]


def test_busy_and_failed_agents_report_their_dial_status(serve):
    fake = FakeHotline("dial", close_after_media=15)
    trace = serve(fake).place_call(mulaw_tone(0.1), agent_behaviour=["busy", "fail", "yes"])
    assert [d["form"]["DialCallStatus"] for d in fake.hits("/twilio/dialed")] == ["busy", "failed", "completed"]
    assert trace.dials[0].address == "client:alice" and trace.dials[1].address == "+15550001111"


def test_caller_hanging_up_on_the_agent_reports_the_dial_and_ends(serve):
    fake = FakeHotline("dial", close_after_media=15)
    trace = serve(fake).place_call(mulaw_tone(0.1), agent_behaviour="yes:60", hangup_while="connected",
                                   hangup_after_s=7)
    dialed = fake.hits("/twilio/dialed")
    assert len(dialed) == 1 and dialed[0]["form"]["DialCallStatus"] == "completed"
    assert dialed[0]["form"]["DialCallDuration"] == "7"
    assert trace.hung_up_by == "caller" and trace.says[-1] != "Goodbye."
    assert fake.requests[-1]["path"] == "/twilio/status"


@pytest.mark.parametrize("spec, expected", [
    ("yes", AgentBehaviour("answer")), ("no", AgentBehaviour("no-answer")), ("busy", AgentBehaviour("busy")),
    ("fail", AgentBehaviour("failed")), ("yes:30", AgentBehaviour("answer", talk_s=30.0)),
    ("busy:1", AgentBehaviour("busy", ring_s=1.0)),
])
def test_agent_behaviours_parse_from_words(spec, expected):
    assert AgentBehaviour.parse(spec) == expected


def test_unknown_agent_behaviour_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="yes, no, busy or fail"):
        AgentBehaviour.parse("maybe")


# --- Enqueue ------------------------------------------------------------------------------

def test_queue_wait_url_is_polled_until_leave_then_the_action_routes(serve):
    fake = FakeHotline("queue", close_after_media=15, leave_on_poll=3)
    trace = serve(fake).place_call(mulaw_tone(0.1))
    waits = fake.hits("/twilio/wait")
    assert len(waits) == 3 and all(w["signed"] for w in waits)
    for w in waits:
        for key in ("QueuePosition", "QueueSid", "QueueTime", "AvgQueueTime", "CurrentQueueSize", "MaxQueueSize"):
            assert key in w["form"]
    assert [int(w["form"]["QueueTime"]) for w in waits] == sorted(int(w["form"]["QueueTime"]) for w in waits)
    assert int(waits[2]["form"]["QueueTime"]) >= 8  # two <Pause length="4"> played in between
    queued = fake.hits("/twilio/queued")[0]["form"]
    assert queued["QueueResult"] == "leave" and queued["QueueSid"] == waits[0]["form"]["QueueSid"]
    assert trace.queues[0].result == "leave" and trace.queues[0].polls == 3
    assert trace.connected_to == "client:carol"
    assert trace.path[1:3] == ["queued in payment", "left queue payment after 3 polls"]


def test_caller_hanging_up_while_queued_reports_queue_result_hangup(serve):
    fake = FakeHotline("queue", close_after_media=15, leave_on_poll=99)
    trace = serve(fake).place_call(mulaw_tone(0.1), hangup_while="queued", hangup_after_s=10)
    queued = fake.hits("/twilio/queued")
    assert len(queued) == 1 and queued[0]["form"]["QueueResult"] == "hangup"
    assert queued[0]["form"]["QueueTime"] == "10"
    assert fake.hits("/twilio/dialed") == []
    assert fake.requests[-1]["path"] == "/twilio/status"
    assert trace.outcome == "hung up while queued" and trace.hung_up_by == "caller"


# --- the trace ----------------------------------------------------------------------------

def test_trace_exports_json_and_renders_for_people(serve):
    fake = FakeHotline("dial", close_after_media=15)
    trace = serve(fake).place_call(mulaw_tone(0.1))
    data = json.loads(json.dumps(trace.to_dict()))
    assert data["from"] == "+15551230000" and data["connected_to"] == "client:alice"
    assert [r["kind"] for r in data["requests"]] == ["voice", "connect-action", "answer-url", "dial-action", "status"]
    assert data["streams"][0]["closed_by"] == "server"
    text = trace.render()
    assert "connected to client:alice" in text and "/twilio/listened" in text


# --- ivr replay ---------------------------------------------------------------------------

def test_replay_command_prints_the_trace_of_a_call_against_a_server(tmp_path, config_file, clean_env, monkeypatch,
                                                                      capsys):
    """`ivr replay` signs with the config's token over IVR_PUBLIC_URL and sends to --url."""
    import wave

    from ivr.cli import main

    fake = FakeHotline("dial", close_after_media=15)
    base, stop = serve_in_thread(fake.app)
    wav = tmp_path / "call.wav"
    with wave.open(str(wav), "wb") as w:  # PCM 16 kHz, as a user's recording might be
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(tone(0.2, 16000).tobytes())
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("IVR_PUBLIC_URL", PUBLIC)
    try:
        code = main(["--config", str(config_file), "replay", str(wav), "--url", base, "--speed", "0",
                     "--agent-answers", "busy", "yes:3", "--json"])
    finally:
        stop()
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert all(r["signed"] for r in fake.requests)
    assert fake.hits("/twilio/voice")[0]["form"]["To"] == "+8215880000"  # the default hotline's number
    assert [d["status"] for d in out["dials"]] == ["busy", "completed"]
    assert out["connected_to"] == "+15550001111"
    # without --json each verb shows as it plays (stderr), then the trace (stdout)
    base, stop = serve_in_thread(FakeHotline("dial", close_after_media=15).app)
    try:
        assert main(["--config", str(config_file), "replay", str(wav), "--url", base, "--speed", "0"]) == 0
    finally:
        stop()
    shown = capsys.readouterr()
    live = shown.err.splitlines()
    assert any("<Dial>" in line for line in live) and all(line.split()[0].endswith("s") for line in live if line.strip())
    assert "dial client:alice" in shown.out and "<Dial>" not in shown.out
