"""A stand-in for Twilio: places a call on the hotline and plays Twilio's side of it.

It speaks only Twilio's documented protocol, so it works against any correct server:
signed webhooks (``X-Twilio-Signature``: HMAC-SHA1 over the public URL and the sorted
POST parameters), TwiML executed verb by verb (Say, Play, Pause, Connect/Stream, Dial
with the agent's side played by an :class:`AgentBehaviour`, Enqueue with its wait-URL
loop, Redirect, Hangup), one Media Stream per ``<Connect><Stream>`` carrying a WAV file
(:mod:`ivr.telephony.streamclient`), and the status callback when the call ends.

Used by the end-to-end tests, by ``ivr replay`` and by the benchmarks. Parameters:

- ``base_url``: the server's public URL (``IVR_PUBLIC_URL``); every URL is signed as
  written, under this host;
- ``connect_to``: where requests really go when that differs (a local port behind a
  tunnel or proxy); only the scheme and host of public URLs are rewritten;
- ``speed``: 1 = real time, N = N times faster, 0 = as fast as possible. Pauses, ringing,
  talk time and the audio are all on the simulated call's clock.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests
from twilio.request_validator import RequestValidator

from ivr.telephony import streamclient, twiml_exec, wavstream
from ivr.telephony.calltrace import CallTrace, RequestRecord, VerbRecord
from ivr.telephony.standin_legs import Legs

API_VERSION = "2010-04-01"
HANGUP_PHASES = ("listening", "queued", "connected")
_COUNTRY = {"+1": "US", "+82": "KR", "+86": "CN", "+44": "GB", "+81": "JP"}


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


@dataclass(frozen=True)
class AgentBehaviour:
    """How the party a ``<Dial>`` rings behaves.

    ``kind``: ``answer`` (picks up after ``ring_s``, hears the ``url`` TwiML, talks for
    ``talk_s``, hangs up → DialCallStatus ``completed``), ``busy`` (after ``ring_s``),
    ``no-answer`` (rings out the Dial ``timeout``) or ``failed`` (at once).
    """

    kind: str = "answer"
    talk_s: float = 5.0
    ring_s: float = 2.0

    KINDS = {"answer": "answer", "answers": "answer", "yes": "answer", "completed": "answer",
             "no": "no-answer", "no-answer": "no-answer", "noanswer": "no-answer",
             "busy": "busy", "fail": "failed", "failed": "failed"}

    @classmethod
    def parse(cls, spec: "str | AgentBehaviour") -> "AgentBehaviour":
        """``"yes"``, ``"no"``, ``"busy"``, ``"fail"``, optionally ``":SECONDS"`` (talk time, or ring time)."""
        if isinstance(spec, AgentBehaviour):
            return spec
        word, _, seconds = str(spec).strip().lower().partition(":")
        kind = cls.KINDS.get(word)
        if kind is None:
            raise ValueError(f"unknown agent behaviour {spec!r}: use yes, no, busy or fail (optionally :SECONDS)")
        if not seconds:
            return cls(kind)
        value = float(seconds)
        return cls(kind, talk_s=value) if kind == "answer" else cls(kind, ring_s=value)


class CallerHungUp(Exception):
    """The simulated caller hung up in the middle of a phase."""

    def __init__(self, phase: str):
        super().__init__(phase)
        self.phase = phase


class CallEnded(Exception):
    def __init__(self, outcome: str, by: str):
        super().__init__(outcome)
        self.outcome, self.by = outcome, by


@dataclass
class Next:
    """Fetch this document next (a Redirect or an action URL)."""

    kind: str
    url: str
    method: str = "POST"
    params: dict | None = None


class TwilioStandIn:
    """Twilio's side of calls on one hotline server. Thread-safe: one :meth:`place_call` per thread."""

    def __init__(self, base_url: str, auth_token: str, account_sid: str | None = None, *,
                 connect_to: str | None = None, voice_path: str = "/twilio/voice",
                 status_path: str = "/twilio/status", speed: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep, http_timeout_s: float = 15.0,
                 max_silence_s: float = 30.0, close_wait_s: float = 20.0, max_queue_s: float = 900.0,
                 max_documents: int = 60, session: requests.Session | None = None,
                 progress: Callable[[str], None] | None = None):
        self.progress = progress  # told each verb as it plays ("12.3s caller <Enqueue> billing")
        self.base_url = base_url.rstrip("/")
        self.auth_token = auth_token
        self.account_sid = account_sid or "AC" + "0" * 32
        self.connect_to = connect_to.rstrip("/") if connect_to else None
        self.voice_url = self.base_url + voice_path
        self.status_url = self.base_url + status_path
        self.speed = speed
        self.sleep = sleep
        self.http_timeout_s = http_timeout_s
        self.max_silence_s = max_silence_s
        self.close_wait_s = close_wait_s
        self.max_queue_s = max_queue_s
        self.max_documents = max_documents
        self.http = session or requests.Session()
        self.validator = RequestValidator(auth_token)

    # --- URLs and signatures ---------------------------------------------------
    def sign(self, url: str, params: dict | None = None) -> str:
        return self.validator.compute_signature(url, params or {})

    def real_url(self, url: str) -> str:
        """Where a public URL is actually sent: same path and query, ``connect_to``'s host."""
        if not self.connect_to:
            return url
        public, target, parts = urlsplit(self.base_url), urlsplit(self.connect_to), urlsplit(url)
        if parts.netloc != public.netloc:
            return url
        scheme = target.scheme
        if parts.scheme in ("ws", "wss"):
            scheme = "wss" if target.scheme == "https" else "ws"
        return urlunsplit((scheme, target.netloc, parts.path, parts.query, ""))

    # --- placing a call --------------------------------------------------------
    def place_call(self, wav: "str | Path | bytes | Sequence[str | Path | bytes] | None" = None, *,
                   from_: str = "+15551230000", to: str = "+18005550100",
                   agent_behaviour: "Iterable[str | AgentBehaviour] | str | AgentBehaviour" = (),
                   hangup_while: str | None = None, hangup_after_s: float = 0.0,
                   speech_end_s: float | None = None, dtmf: Iterable[tuple[float, str]] = (),
                   queue_position: int = 1, speed: float | None = None, call_sid: str | None = None,
                   forge: Iterable[str] = ()) -> CallTrace:
        """Place one call and play it to the end; returns its :class:`CallTrace`.

        ``wav``: the caller's audio for each listening turn (a path, 8 kHz μ-law bytes, or a
        list, one per ``<Connect><Stream>``; later turns are silent). ``agent_behaviour``:
        one per ``<Dial>``, in order (``"no"`` then ``"yes"``...); after the list, agents answer.
        ``hangup_while`` ``listening|queued|connected`` hangs the caller up ``hangup_after_s``
        (call seconds) into the first such phase. ``forge``: request kinds (``voice``,
        ``websocket``, ``status``... or ``all``) to sign with a wrong key.
        """
        turns = [_load_audio(w) for w in ([] if wav is None else wav if isinstance(wav, (list, tuple)) else [wav])]
        if isinstance(agent_behaviour, (str, AgentBehaviour)):
            agent_behaviour = [agent_behaviour]
        behaviours = deque(AgentBehaviour.parse(b) for b in agent_behaviour)
        if hangup_while is not None and hangup_while not in HANGUP_PHASES:
            raise ValueError(f"hangup_while must be one of {', '.join(HANGUP_PHASES)}, not {hangup_while!r}")
        call = _Call(self, call_sid or new_sid("CA"), from_, to, turns, behaviours, hangup_while, hangup_after_s,
                     speech_end_s, list(dtmf), queue_position, self.speed if speed is None else speed, set(forge))
        return call.run()


def _load_audio(item) -> bytes:
    return bytes(item) if isinstance(item, (bytes, bytearray)) else wavstream.read_wav(item)


class _Call:
    """One call in progress: the simulated clock, the TwiML loop, the trace."""

    def __init__(self, standin: TwilioStandIn, sid, from_, to, turns, behaviours, hangup_while, hangup_after_s,
                 speech_end_s, dtmf, queue_position, speed, forge):
        self.s = standin
        self.trace = CallTrace(call_sid=sid, account_sid=standin.account_sid, from_=from_, to=to)
        self.turns = deque(turns)
        self.behaviours = behaviours
        self.hangup_while, self.hangup_after_s = hangup_while, hangup_after_s
        self.hangup_deadline: float | None = None
        self.speech_end_s, self.dtmf, self.queue_position = speech_end_s, dtmf, queue_position
        self.speed, self.forge = speed, forge
        self.call_s = 0.0
        self.phase_now = "greeting"
        self.wall0 = time.perf_counter()
        self.first_request = True
        self.legs = Legs(self)

    # --- the simulated clock ---------------------------------------------------
    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of call time pass; raises CallerHungUp at the planned moment."""
        seconds = max(0.0, seconds)
        hang = self.hangup_deadline is not None and self.call_s + seconds >= self.hangup_deadline
        if hang:
            seconds = max(0.0, self.hangup_deadline - self.call_s)
        self.call_s += seconds
        if self.speed > 0 and seconds > 0:
            self.s.sleep(seconds / self.speed)
        if hang:
            phase, self.hangup_deadline, self.hangup_while = self.phase_now, None, None
            raise CallerHungUp(phase)

    def enter(self, phase: str) -> bool:
        """A phase starts; arm the caller's hang-up if it is the planned one. True if armed."""
        self.phase_now = phase
        if self.hangup_while == phase and self.hangup_deadline is None:
            self.hangup_deadline = self.call_s + self.hangup_after_s
            return True
        return False

    def leave_phase(self) -> None:
        """The phase is over without the planned hang-up; a later phase of that kind re-arms it."""
        self.hangup_deadline = None

    def signature(self, kind: str, url: str, params: dict) -> str:
        if {"all", kind} & self.forge:
            return RequestValidator("forged-" + self.s.auth_token).compute_signature(url, params)
        return self.s.sign(url, params)

    def ms(self) -> float:
        return round((time.perf_counter() - self.wall0) * 1000, 1)

    # --- HTTP ------------------------------------------------------------------
    def params(self, **extra) -> dict[str, str]:
        t = self.trace
        status = "ringing" if self.first_request else "in-progress"
        country_from = next((c for p, c in sorted(_COUNTRY.items(), key=lambda i: -len(i[0])) if t.from_.startswith(p)), "")
        country_to = next((c for p, c in sorted(_COUNTRY.items(), key=lambda i: -len(i[0])) if t.to.startswith(p)), "")
        base = {"AccountSid": t.account_sid, "ApiVersion": API_VERSION, "CallSid": t.call_sid, "CallStatus": status,
                "Direction": "inbound", "From": t.from_, "To": t.to, "Caller": t.from_, "Called": t.to,
                "FromCountry": country_from, "CallerCountry": country_from, "ToCountry": country_to,
                "CalledCountry": country_to, "FromCity": "", "FromState": "", "FromZip": "", "CallerCity": "",
                "CallerState": "", "CallerZip": "", "ToCity": "", "ToState": "", "ToZip": "", "CalledCity": "",
                "CalledState": "", "CalledZip": ""}
        base.update({k: str(v) for k, v in extra.items()})
        return base

    def request(self, kind: str, url: str, method: str = "POST", params: dict | None = None,
                leg: str = "caller") -> tuple[RequestRecord, list | None]:
        """One signed webhook; returns its record and the parsed TwiML (None if unusable)."""
        params = dict(params or {})
        self.first_request = False
        signed_url, body = url, params
        if method == "GET":  # Twilio puts the parameters in the query and signs the whole URL
            signed_url = url + ("&" if urlsplit(url).query else "?") + urlencode(params)
            body = {}
        signature = self.signature(kind, signed_url, body)
        sent_to = self.s.real_url(signed_url)
        rec = RequestRecord(kind=kind, method=method, url=signed_url, sent_to=sent_to, params=params,
                            at_ms=self.ms(), leg=leg)
        self.trace.requests.append(rec)
        headers = {"X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1",
                   "I-Twilio-Idempotency-Token": secrets.token_hex(16)}
        started = time.perf_counter()
        try:
            if method == "GET":
                resp = self.s.http.get(sent_to, headers=headers, timeout=self.s.http_timeout_s, allow_redirects=False)
            else:
                resp = self.s.http.post(sent_to, data=body, headers=headers, timeout=self.s.http_timeout_s,
                                        allow_redirects=False)
        except requests.RequestException as exc:
            rec.latency_ms = round((time.perf_counter() - started) * 1000, 2)
            rec.error = f"no HTTP answer: {exc.__class__.__name__}: {exc}"
            self.trace.errors.append(f"{kind} {url}: {rec.error}")
            return rec, None
        rec.latency_ms = round((time.perf_counter() - started) * 1000, 2)
        rec.status = resp.status_code
        rec.response = resp.text[:2000]
        if not 200 <= resp.status_code < 300:
            rec.error = f"HTTP {resp.status_code}"
            self.trace.errors.append(f"{kind} {url}: HTTP {resp.status_code} (Twilio: application error)")
            return rec, None
        if kind == "status":
            return rec, []
        try:
            return rec, twiml_exec.parse(resp.content)
        except twiml_exec.TwimlError as exc:
            rec.error = f"invalid TwiML: {exc}"
            self.trace.errors.append(f"{kind} {url}: invalid TwiML: {exc}")
            return rec, None

    def record_verb(self, verb, document: str, leg: str = "caller") -> None:
        self.trace.verbs.append(VerbRecord(leg=leg, name=verb.name, attrs=dict(verb.attrs), text=verb.text,
                                           document=document, call_s=round(self.call_s, 3)))
        if self.s.progress is not None:
            said = " ".join((verb.text or "").split())
            self.s.progress(f"{self.call_s:7.1f}s {leg:<6} <{verb.name}> {said[:80]}".rstrip())

    # --- the call --------------------------------------------------------------
    def run(self) -> CallTrace:
        t = self.trace
        nxt: Next | None = Next("voice", self.s.voice_url)
        documents = 0
        try:
            while nxt is not None:
                documents += 1
                if documents > self.s.max_documents:
                    t.errors.append(f"more than {self.s.max_documents} TwiML documents: a Redirect loop?")
                    raise CallEnded("stand-in gave up: endless TwiML", "standin")
                rec, verbs = self.request(nxt.kind, nxt.url, nxt.method, self.params(**(nxt.params or {})))
                if verbs is None:
                    raise CallEnded("application error", "error")
                self.note_decision(nxt.kind, verbs)
                nxt = self.run_document(verbs, rec.url)
            t.path.append("TwiML ended")
            raise CallEnded(self.final_outcome("TwiML ran out"), "twiml")
        except CallEnded as end:
            t.outcome, t.hung_up_by = end.outcome, end.by
        except CallerHungUp as hung:  # a hang-up outside any phase that handles it
            t.outcome, t.hung_up_by = f"hung up while {hung.phase}", "caller"
        t.call_s = round(self.call_s, 3)
        duration = int(round(self.call_s))
        self.request("status", self.s.status_url, "POST", self.params(
            CallStatus="completed", CallDuration=duration, Duration=max(1, -(-duration // 60)),
            Timestamp=time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
            CallbackSource="call-progress-events", SequenceNumber=0))
        t.wall_ms = self.ms()
        return t

    def final_outcome(self, default: str) -> str:
        if self.trace.connected_to:
            return f"talked to {self.trace.connected_to}"
        return default

    def note_decision(self, kind: str, verbs: list) -> None:
        """Timings from the caller's end of speech to the answer that routes the call."""
        streams = self.trace.streams
        if kind != "connect-action" or not streams or streams[-1].speech_end_wall is None:
            return
        names = [v.name for v in verbs]
        decided = next((n for n in names if n in ("Dial", "Enqueue", "Connect", "Hangup")), None)
        if decided is None:
            return
        elapsed = round((time.perf_counter() - streams[-1].speech_end_wall) * 1000, 1)
        self.trace.timings.setdefault(f"speech_end_to_{decided.lower()}_ms", elapsed)
        if streams[-1].closed_wall:
            closed = round((time.perf_counter() - streams[-1].closed_wall) * 1000, 1)
            self.trace.timings.setdefault(f"stream_close_to_{decided.lower()}_ms", closed)

    def run_document(self, verbs: list, doc_url: str) -> Next | None:
        for verb in verbs:
            self.record_verb(verb, doc_url)
            name = verb.name
            if name == "Say":
                self.trace.says.append(verb.text)
                self.advance(twiml_exec.say_seconds(verb.text, int(twiml_exec.number(verb.attrs.get("loop"), 1))))
            elif name == "Play":
                self.advance(twiml_exec.PLAY_S * max(1, int(twiml_exec.number(verb.attrs.get("loop"), 1))))
            elif name == "Pause":
                self.advance(twiml_exec.pause_seconds(verb))
            elif name in ("Hangup", "Reject"):
                self.trace.path.append(f"<{name}>")
                raise CallEnded(self.final_outcome(f"ended by <{name}>"), "twiml")
            elif name == "Redirect":
                target = twiml_exec.resolve(doc_url, verb.text)
                if target is None:
                    self.trace.errors.append("<Redirect> without a URL")
                    raise CallEnded("application error", "error")
                return Next("redirect", target, twiml_exec.method(verb))
            elif name == "Connect":
                nxt = self.legs.connect(verb, doc_url)
                if nxt is not None:
                    return nxt
            elif name == "Dial":
                nxt = self.legs.dial(verb, doc_url)
                if nxt is not None:
                    return nxt
            elif name == "Enqueue":
                nxt = self.legs.enqueue(verb, doc_url)
                if nxt is not None:
                    return nxt
            elif name == "Leave":
                self.trace.warnings.append("<Leave> outside a queue is ignored by Twilio")
            else:
                self.trace.errors.append(f"<{name}> is valid TwiML but the stand-in does not execute it")
        return None

    def next_audio(self) -> bytes:
        return self.turns.popleft() if self.turns else b""

    def stream_plan(self, audio: bytes, hangup_after_s: float | None) -> streamclient.StreamPlan:
        plan = streamclient.StreamPlan(audio=audio, speed=self.speed, hangup_after_s=hangup_after_s,
                                       max_silence_s=self.s.max_silence_s, close_wait_s=self.s.close_wait_s,
                                       dtmf=self.dtmf, sleep=self.s.sleep)
        if self.speech_end_s is not None and not self.trace.streams:
            plan.speech_end_s = self.speech_end_s
        self.dtmf = []
        return plan
