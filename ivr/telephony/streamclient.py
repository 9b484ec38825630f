"""Twilio's side of one ``<Connect><Stream>``: the caller's line as a Media Streams WebSocket.

Speaks the protocol as Twilio documents it: the upgrade carries ``X-Twilio-Signature``
over the stream URL exactly as written in the TwiML (no parameters); then ``connected``
(no sequence number), ``start`` (sequence "1"), ``media`` frames of 160 μ-law bytes
(sequence, chunk and timestamp as strings; chunk counts from "1", timestamp is ms since
the stream started), ``dtmf``, ``mark`` (echoes of the server's marks) and, only when the
caller hangs up, ``stop``. When the recording runs out the line keeps carrying silence
until the server closes the socket, as a live caller's line does. The server may send
``media``, ``mark`` and ``clear``; anything else is recorded as a protocol error.
"""

from __future__ import annotations

import base64
import json
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import websocket

from ivr.telephony import wavstream
from ivr.telephony.calltrace import StreamRecord

SERVER_EVENTS = ("media", "mark", "clear")


@dataclass
class StreamPlan:
    """What the caller does on this stream."""

    audio: bytes  # 8 kHz μ-law; may be empty (a silent caller)
    speed: float = 1.0  # 1 = real time, 4 = four times as fast, 0 = as fast as possible
    speech_end_s: float | None = None  # audio time the caller stops speaking (default: end of audio)
    hangup_after_s: float | None = None  # caller hangs up at this audio time (sends stop, closes)
    max_silence_s: float = 30.0  # line silence after the audio before the stand-in gives up
    close_wait_s: float = 20.0  # then wall seconds to wait for the server to close
    dtmf: list[tuple[float, str]] = field(default_factory=list)  # (audio time, digit)
    sleep: Callable[[float], None] = time.sleep


class _Line:
    """The open socket plus everything both threads touch, under one lock."""

    def __init__(self, ws, record: StreamRecord):
        self.ws = ws
        self.record = record
        self.lock = threading.Lock()
        self.sequence = 0
        self.server_closed = threading.Event()
        self.closing = False  # we are shutting the socket down ourselves
        # Marks to echo. Only the playing thread writes to the socket: a reader thread
        # sending too would be starved by a stream at full speed.
        self.marks: queue.SimpleQueue[str] = queue.SimpleQueue()

    def send(self, message: dict, numbered: bool = True) -> None:
        with self.lock:
            if numbered:
                self.sequence += 1
                message = {"event": message["event"], "sequenceNumber": str(self.sequence),
                           **{k: v for k, v in message.items() if k != "event"}}
            self.ws.send(json.dumps(message))
            self.record.count(message["event"])

    def read(self, stream_sid: str) -> None:
        """Reader thread: the server's messages until it closes the socket."""
        rec = self.record
        while True:
            try:
                opcode, data = self.ws.recv_data()
            except websocket.WebSocketTimeoutException:
                continue
            except Exception as exc:  # socket shut down by us, or dropped
                if not self.closing:
                    rec.closed_wall = time.perf_counter()
                    rec.errors.append(f"stream connection dropped without a close frame: {exc.__class__.__name__}: {exc}")
                self.server_closed.set()
                return
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                rec.closed_wall = time.perf_counter()
                self.server_closed.set()
                return
            if opcode != websocket.ABNF.OPCODE_TEXT:
                rec.errors.append("server sent a binary frame; Twilio accepts JSON text messages only")
                continue
            try:
                msg = json.loads(data)
                event = msg["event"]
            except (ValueError, TypeError, KeyError):
                rec.errors.append(f"server sent a message that is not Twilio JSON: {data[:80]!r}")
                continue
            rec.server_events[event] = rec.server_events.get(event, 0) + 1
            if event not in SERVER_EVENTS:
                rec.errors.append(f"server sent event {event!r}; Twilio accepts only media, mark and clear")
                continue
            if msg.get("streamSid") != stream_sid:
                rec.errors.append(f"server's {event} message has streamSid {msg.get('streamSid')!r}, not {stream_sid}")
            if event == "media":
                try:
                    rec.server_media_bytes += len(base64.b64decode(msg["media"]["payload"], validate=True))
                except (KeyError, TypeError, ValueError):
                    rec.errors.append("server's media message has no valid base64 media.payload")
            elif event == "mark":
                name = (msg.get("mark") or {}).get("name") if isinstance(msg.get("mark"), dict) else None
                if not name:
                    rec.errors.append("server's mark message has no mark.name")
                    continue
                # Nothing is actually played, so the audio before the mark is "done" at once.
                self.marks.put(name)


def run(url: str, sent_to: str, signature: str, account_sid: str, call_sid: str, stream_sid: str,
        custom_parameters: dict[str, str], plan: StreamPlan, connect_timeout_s: float = 10.0) -> StreamRecord:
    """Open the stream, play the caller's line, and return when it ends (see ``closed_by``)."""
    rec = StreamRecord(url=url, sent_to=sent_to, custom_parameters=dict(custom_parameters), stream_sid=stream_sid)
    try:
        ws = websocket.create_connection(sent_to, timeout=connect_timeout_s,
                                         header={"X-Twilio-Signature": signature})
    except websocket.WebSocketBadStatusException as exc:
        rec.handshake_status, rec.closed_by = exc.status_code, "refused"
        rec.errors.append(f"WebSocket upgrade refused with HTTP {exc.status_code}")
        return rec
    except Exception as exc:
        rec.closed_by = "error"
        rec.errors.append(f"could not open the stream WebSocket at {sent_to}: {exc}")
        return rec
    rec.handshake_status = 101
    ws.settimeout(max(connect_timeout_s, 30.0))
    line = _Line(ws, rec)
    reader = threading.Thread(target=line.read, args=(stream_sid,), name=f"standin-stream-{call_sid}", daemon=True)
    try:
        line.send({"event": "connected", "protocol": "Call", "version": "1.0.0"}, numbered=False)
        line.send({"event": "start", "start": {
            "accountSid": account_sid, "streamSid": stream_sid, "callSid": call_sid, "tracks": ["inbound"],
            "customParameters": dict(custom_parameters),
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }, "streamSid": stream_sid})
        reader.start()
        _play(line, plan, account_sid, call_sid, stream_sid)
    except (websocket.WebSocketException, OSError):
        # A send failing means the server dropped the socket (its close frame may be on its way).
        line.server_closed.wait(1.0)
        if not rec.closed_by:
            rec.closed_by = "server"
            rec.closed_wall = rec.closed_wall or time.perf_counter()
    finally:
        if rec.closed_by != "server":
            try:
                ws.send_close()
            except Exception:
                pass
            # Wait for the server's close frame: shutting down with its data unread would
            # reset the connection and could lose our last messages (the stop) on its side.
            line.server_closed.wait(5.0)
        line.closing = True
        try:
            ws.shutdown()
        except Exception:
            pass
        if reader.is_alive():
            reader.join(2.0)
    if rec.speech_end_wall is not None and rec.closed_by == "server" and rec.closed_wall:
        rec.speech_end_to_close_ms = round((rec.closed_wall - rec.speech_end_wall) * 1000, 1)
    return rec


def _play(line: _Line, plan: StreamPlan, account_sid: str, call_sid: str, stream_sid: str) -> None:
    rec = line.record
    audio_frames = list(wavstream.frames(plan.audio))
    speech_end = plan.speech_end_s if plan.speech_end_s is not None else len(audio_frames) * 0.02
    rec.speech_end_s = round(speech_end, 3)
    dtmf = sorted(plan.dtmf)
    frame_s = wavstream.FRAME_MS / 1000.0
    interval = frame_s / plan.speed if plan.speed > 0 else 0.0
    silence_budget = int(plan.max_silence_s / frame_s)
    started = time.perf_counter()
    chunk = 0
    if speech_end <= 0:
        rec.speech_end_wall = started
    while True:
        if line.server_closed.is_set():
            rec.closed_by = "server"
            break
        audio_s = chunk * frame_s
        if plan.hangup_after_s is not None and audio_s >= plan.hangup_after_s:
            line.send({"event": "stop", "streamSid": stream_sid, "stop": {"accountSid": account_sid, "callSid": call_sid}})
            rec.closed_by = "caller"
            break
        if chunk >= len(audio_frames) + silence_budget:
            # The server never closed the stream. Wait a little (it may be catching up
            # with an accelerated stream), then give up as a caller would.
            deadline = time.perf_counter() + plan.close_wait_s
            while not line.server_closed.wait(0.05) and time.perf_counter() < deadline:
                _echo_marks(line, stream_sid)
            if line.server_closed.is_set():
                rec.closed_by = "server"
            else:
                rec.closed_by = "timeout"
                rec.errors.append(f"server never closed the media stream after {plan.max_silence_s:.0f} s of "
                                  f"line silence (+{plan.close_wait_s:.0f} s wait); the caller hung up")
                line.send({"event": "stop", "streamSid": stream_sid,
                           "stop": {"accountSid": account_sid, "callSid": call_sid}})
            break
        _echo_marks(line, stream_sid)
        while dtmf and dtmf[0][0] <= audio_s:
            digit = dtmf.pop(0)[1]
            line.send({"event": "dtmf", "streamSid": stream_sid, "dtmf": {"track": "inbound_track", "digit": digit}})
            rec.dtmf_sent.append(digit)
        if interval:
            delay = started + chunk * interval - time.perf_counter()
            if delay > 0:
                plan.sleep(delay)
        else:
            time.sleep(0)  # flat out, but let the reader thread (marks, close) have the GIL
        is_audio = chunk < len(audio_frames)
        payload = audio_frames[chunk] if is_audio else wavstream.SILENCE_FRAME
        chunk += 1
        line.send({"event": "media", "streamSid": stream_sid, "media": {
            "track": "inbound", "chunk": str(chunk), "timestamp": str((chunk - 1) * wavstream.FRAME_MS),
            "payload": base64.b64encode(payload).decode("ascii")}})
        rec.frames_sent += 1
        if is_audio:
            rec.audio_frames += 1
        else:
            rec.silence_frames += 1
        rec.audio_s = round(chunk * frame_s, 3)
        if rec.speech_end_wall is None and chunk * frame_s >= speech_end:
            rec.speech_end_wall = time.perf_counter()


def _echo_marks(line: _Line, stream_sid: str) -> None:
    while not line.marks.empty():
        name = line.marks.get()
        line.send({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}})
        line.record.marks_echoed.append(name)
