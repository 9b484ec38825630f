"""The Media Stream WebSocket: Twilio's audio in, a finished utterance on the session out.

One socket per call turn. After ``start`` we check the per-call token minted by the
signed voice webhook, feed every ``media`` frame to the call's own recognizer, keep the
live partial on the session, and when the caller has finished (or fell silent, or ran
out of time) store the outcome on the session *before* closing the socket — closing it
is what makes Twilio request the ``<Connect action>``.
"""

from __future__ import annotations

import logging
import time
import wave
from pathlib import Path

from ivr.telephony import protocol
from ivr.telephony.context import CallContext, context

log = logging.getLogger(__name__)

IDLE_TIMEOUT_S = 10.0  # no message at all for this long: Twilio is gone
MAX_BAD_MESSAGES = 200  # a peer that sends only garbage is dropped
PARTIAL_EVERY_S = 0.4  # audio seconds between live-partial writes


def stream(ws) -> None:
    """flask-sock route for ``/twilio/stream`` (the signature was checked before the handshake)."""
    ctx = context()
    turn = StreamTurn(ctx)
    try:
        turn.run(ws)
    except Exception:
        # Not to flask-sock: its error path would answer with the webhooks' fallback TwiML,
        # written as raw bytes into the open socket. ``turn.close()`` below stores what was
        # heard, then flask-sock closes the socket; the <Connect> action moves the call on.
        log.exception("media stream handler failed; finishing the turn", extra={"call_sid": turn.sid})
    finally:
        if turn.stored:  # the outcome is on the session: Twilio may ask for the <Connect> action now
            try:
                ws.close()
            except Exception:  # already closed by Twilio
                pass
        turn.close()


class StreamTurn:
    def __init__(self, ctx: CallContext):
        self.ctx = ctx
        self.sid = ""
        self.language = ""
        self.listener = None
        self.session = None
        self.bad = 0
        self.last_partial_at = -1.0
        self.last_partial = ""
        self.audio = bytearray() if ctx.config.calls.record_audio else None
        self.finished_wall = 0.0
        self.stored = False
        self.details: dict = {}
        # how far this socket's reading is behind the caller's real time: (wall since the
        # start message) - (the frame's own timestamp); at the last frame and the most seen
        self.started_at = 0.0
        self.lag_s = self.max_lag_s = 0.0

    def run(self, ws) -> None:
        while True:
            raw = ws.receive(timeout=IDLE_TIMEOUT_S)
            if raw is None:
                log.warning("media stream idle; finishing", extra={"call_sid": self.sid})
                self.finish("stream_end")
                return
            try:
                event = protocol.parse(raw)
            except protocol.MalformedMessage as exc:
                self.bad += 1
                if self.bad <= 5 or self.bad % 100 == 0:
                    log.warning("malformed media stream message skipped",
                                extra={"call_sid": self.sid, "reason": str(exc), "count": self.bad})
                if self.bad > MAX_BAD_MESSAGES:
                    self.finish("stream_end")
                    return
                continue
            if isinstance(event, protocol.Start):
                if not self.on_start(event):
                    return
            elif isinstance(event, protocol.Media):
                if self.on_media(event):
                    self.finish("endpoint")
                    return
            elif isinstance(event, protocol.Stop):
                self.finish("stream_end")
                return
            elif isinstance(event, protocol.Dtmf):
                log.info("caller pressed a key (ignored: no keypad menus)", extra={"call_sid": self.sid})

    def on_start(self, event: protocol.Start) -> bool:
        if self.session is not None:
            # One socket carries one stream: a second start would orphan this turn's recognizer.
            log.warning("media stream sent a second start; ignored",
                        extra={"call_sid": self.sid, "second_call_sid": event.call_sid})
            return True
        session = self.ctx.sessions.get(event.call_sid)
        if session is None or not session.token or event.custom.get("token") != session.token:
            log.warning("media stream refused: unknown call or wrong token", extra={"call_sid": event.call_sid})
            return False
        hotline = self.ctx.config.hotline(session.hotline)
        self.sid, self.session, self.language = event.call_sid, session, hotline.language
        self.started_at = time.perf_counter()
        if (event.encoding, event.sample_rate, event.channels) != ("audio/x-mulaw", 8000, 1):
            # Twilio documents only 8 kHz mono mu-law; decoding anything else as that is noise.
            log.error("media stream in an unsupported audio format; the caller goes to a person",
                      extra={"call_sid": event.call_sid, "encoding": event.encoding, "rate": event.sample_rate,
                             "channels": event.channels})
            self._store(outcome="unsupported_audio", text="",
                        details={"encoding": event.encoding, "sample_rate": event.sample_rate,
                                 "channels": event.channels})
            return False
        speech = self.ctx.services.speech
        if speech is None or not speech.ready(hotline.model):
            self._store(outcome="asr_unavailable", text="", details={})
            return False
        self.listener = speech.listener(hotline.model, settles=self._settles(hotline.language))
        return True

    def _settles(self, language: str):
        """The early-decision check: do the words so far route the call at once?"""
        classifier = self.ctx.services.classifier
        if classifier is None or self.ctx.config.asr.endpointing.settled_silence_s <= 0:
            return None

        def settles(text: str) -> bool:
            p = classifier.predict(text, language)
            return p.decision == "route" and p.category != "out_of_scope"
        return settles

    def on_media(self, event: protocol.Media) -> bool:
        """Feed one frame; True when the caller has finished speaking."""
        if self.listener is None or self.listener.finished:
            return self.listener is not None
        if self.audio is not None:
            self.audio.extend(event.audio)
        self.lag_s = time.perf_counter() - self.started_at - event.timestamp_ms / 1000.0
        self.max_lag_s = max(self.max_lag_s, self.lag_s)
        for ev in self.listener.feed_mulaw(event.audio):
            if ev.kind == "partial" and ev.text and ev.text != self.last_partial \
                    and ev.at_s - self.last_partial_at >= PARTIAL_EVERY_S:
                self.last_partial, self.last_partial_at = ev.text, ev.at_s
                self.ctx.sessions.set_partial(self.sid, _mask(ev.text, self.language))
        return self.listener.finished

    def finish(self, reason: str) -> None:
        if self.listener is None or self.stored:
            return
        self.finished_wall = time.time()
        # decided early (the words had settled the call): the recognizer's final pass runs
        # after the socket is closed (close()), not while the caller waits
        listener = self.listener
        utterance = listener.utterance if listener.finished else listener.finish(reason)
        details = _details(utterance)
        # how far behind the caller's real time this socket was read, at its last frame and at worst
        details["read_lag_ms"] = round(self.lag_s * 1000, 1)
        details["read_lag_max_ms"] = round(self.max_lag_s * 1000, 1)
        self._store(outcome=utterance.outcome, text=_mask(utterance.text, self.language), details=details)
        self.ctx.metric("observe_recognition", utterance.decode_latency_ms / 1000.0)

    def _store(self, outcome: str, text: str, details: dict) -> None:
        session = self.session
        details = self.details = dict(details, turn=session.reprompts, finished_at=self.finished_wall or time.time())
        more = {}
        if self.audio is not None and self.audio:
            details["audio_path"] = self._save_audio()
            more["recordings"] = [p for p in session.recordings if p != details["audio_path"]] + [details["audio_path"]]
        fields = dict(speech_outcome=outcome, transcript=text, partial=text, speech=details, **more)
        turn = session.reprompts
        # Decided on the session as it is now, not as the start message found it: the caller
        # may have hung up since, or (a socket late to finish) the call moved on to a later turn.
        now = self.ctx.sessions.update(self.sid, "understanding",
                                       when=lambda s: s.state == "listening" and s.reprompts == turn, **fields)
        if now is not None and now.state == "ended" and now.reprompts == turn:
            # hung up while speaking: the words go on the ended session (the ops page shows it for
            # its grace period), and the record the hang-up wrote without them is written again
            if self.ctx.sessions.update(self.sid, when=lambda s: s.state == "ended" and s.reprompts == turn, **fields):
                from ivr.telephony import record

                record.amend(self.ctx, self.sid)
        elif now is not None and (now.state != "understanding" or now.reprompts != turn):
            log.warning("media stream finished after its turn; outcome not stored",
                        extra={"call_sid": self.sid, "turn": turn, "state": now.state, "call_turn": now.reprompts})
        self.stored = True
        log.info("caller finished speaking", extra={"call_sid": self.sid, "speech_outcome": outcome})

    def _save_audio(self) -> str:
        """The caller's side as a WAV that `ivr replay` takes (8 kHz 16-bit PCM)."""
        from ivr.asr.audio import mulaw_to_pcm16

        folder = self.ctx.config.path(self.ctx.config.calls.recordings_dir)
        folder.mkdir(parents=True, exist_ok=True)
        path = Path(folder) / f"{self.sid}-{self.session.reprompts}.wav"
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(8000)
            w.writeframes(mulaw_to_pcm16(bytes(self.audio)).tobytes())
        return str(path)

    def close(self) -> None:
        if self.listener is None:
            return
        if not self.stored:
            try:
                self.finish("stream_end")
            except Exception:
                log.exception("could not store the utterance of a dropped stream", extra={"call_sid": self.sid})
        if self.listener.final_pending:  # decided early: the final pass also gives the recognizer back
            self._complete()

    def _complete(self) -> None:
        """After an early decision: the recognizer's final pass, and its words on this turn's record."""
        try:
            final = self.listener.finish()
            details = dict(self.details, **{k: v for k, v in _details(final).items()
                                             if k in ("words", "confidence", "speech_end_s", "final_ms")})
            turn = self.details.get("turn")
            self.ctx.sessions.update(self.sid, when=lambda s: (s.speech or {}).get("turn") == turn, speech=details)
        except Exception:  # the decision stands; only the record's word details are missing
            log.exception("final pass after an early decision failed", extra={"call_sid": self.sid})


def _details(utterance) -> dict:
    """An utterance for the session's record: no text in it (the masked transcript is kept apart)."""
    details = utterance.to_dict()
    details.pop("text", None)
    details.pop("partial", None)
    details["words"] = len(details.pop("words", None) or [])
    return details


def _mask(text: str, language: str) -> str:
    from ivr.ops.masking import mask

    return mask(text, language) if text else text
