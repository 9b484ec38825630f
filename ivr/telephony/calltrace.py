"""What the Twilio stand-in saw on one call: requests, TwiML verbs, streams, dials, queues.

Plain dataclasses with ``to_dict()`` (JSON-ready) and :meth:`CallTrace.render` (for people).
Wall-clock fields (``latency_ms``, ``at_ms``, ``timings``) are measurements; ``call_s``
fields are the simulated call's own time, which runs ahead of the wall clock when a
replay is accelerated.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field


@dataclass
class RequestRecord:
    kind: str  # voice | connect-action | redirect | dial-action | answer-url | wait | enqueue-action | status
    method: str
    url: str  # the public URL, exactly as signed
    sent_to: str  # where it was actually sent (connect_to rewrites the host)
    params: dict[str, str]
    status: int | None = None  # None: no HTTP answer at all
    latency_ms: float = 0.0
    at_ms: float = 0.0  # wall time since the call started
    response: str = ""  # body, shortened
    error: str = ""
    leg: str = "caller"  # caller | agent | wait


@dataclass
class VerbRecord:
    leg: str  # caller | agent | wait
    name: str
    attrs: dict[str, str]
    text: str
    document: str  # the URL whose TwiML it came from
    call_s: float


@dataclass
class StreamRecord:
    url: str  # as written in the TwiML and signed
    sent_to: str
    custom_parameters: dict[str, str] = field(default_factory=dict)
    stream_sid: str = ""
    handshake_status: int | None = None  # 101 when accepted
    closed_by: str = ""  # server | caller | timeout | refused | error
    frames_sent: int = 0
    audio_frames: int = 0  # frames carrying the caller's recording
    silence_frames: int = 0  # line silence after the recording ran out
    audio_s: float = 0.0  # audio time sent when the stream ended
    events_sent: dict[str, int] = field(default_factory=dict)
    first_events: list[str] = field(default_factory=list)
    server_events: dict[str, int] = field(default_factory=dict)
    server_media_bytes: int = 0
    marks_echoed: list[str] = field(default_factory=list)
    dtmf_sent: list[str] = field(default_factory=list)
    speech_end_s: float | None = None  # audio time the caller stopped speaking
    speech_end_to_close_ms: float | None = None  # wall time from then until the server closed
    errors: list[str] = field(default_factory=list)
    # wall-clock instants (perf_counter), for timings; not exported
    speech_end_wall: float | None = field(default=None, repr=False)
    closed_wall: float | None = field(default=None, repr=False)

    def count(self, event: str) -> None:
        self.events_sent[event] = self.events_sent.get(event, 0) + 1
        if len(self.first_events) < 6:
            self.first_events.append(event)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("speech_end_wall")
        out.pop("closed_wall")
        return out


@dataclass
class DialRecord:
    address: str  # client:alice | sip:... | +E164 | queue:NAME
    targets: list[str]
    behaviour: str  # answer | busy | no-answer | failed
    status: str = ""  # the DialCallStatus sent
    dial_call_sid: str = ""
    duration_s: int = 0  # DialCallDuration
    timeout_s: float = 30.0
    answer_url: str = ""
    agent_says: list[str] = field(default_factory=list)  # what the agent heard on pick-up (the whisper)
    bridged: bool = False
    caller_hung_up: bool = False


@dataclass
class QueueRecord:
    name: str
    queue_sid: str
    polls: int = 0
    result: str = ""  # QueueResult: leave | hangup | error ...
    queue_time_s: int = 0


@dataclass
class CallTrace:
    call_sid: str
    account_sid: str
    from_: str
    to: str
    requests: list[RequestRecord] = field(default_factory=list)
    verbs: list[VerbRecord] = field(default_factory=list)
    says: list[str] = field(default_factory=list)
    streams: list[StreamRecord] = field(default_factory=list)
    dials: list[DialRecord] = field(default_factory=list)
    queues: list[QueueRecord] = field(default_factory=list)
    path: list[str] = field(default_factory=list)  # milestones, in order
    outcome: str = ""  # where the call ended up, in words
    connected_to: str | None = None  # the address that answered and talked with the caller
    hung_up_by: str = ""  # caller | agent | twiml | standin | error
    call_s: float = 0.0  # simulated call duration (CallDuration)
    wall_ms: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    # --- questions tests ask -------------------------------------------------
    def requests_of(self, kind: str) -> list[RequestRecord]:
        return [r for r in self.requests if r.kind == kind]

    def verb_names(self, leg: str = "caller") -> list[str]:
        return [v.name for v in self.verbs if v.leg == leg]

    @property
    def dial_statuses(self) -> list[str]:
        return [d.status for d in self.dials]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k != "streams"}
        out["from"] = out.pop("from_")
        out["streams"] = [s.to_dict() for s in self.streams]
        return out

    def render(self) -> str:
        lines = [f"call {self.call_sid}  {self.from_} -> {self.to}",
                 f"outcome: {self.outcome}" + (f" (connected to {self.connected_to})" if self.connected_to else ""),
                 f"path: {' → '.join(self.path) or '-'}",
                 f"call time {self.call_s:.1f} s (simulated), wall {self.wall_ms:.0f} ms"]
        if self.timings:
            lines.append("timings: " + ", ".join(f"{k}={v:.0f}" for k, v in self.timings.items()))
        lines.append("requests:")
        for r in self.requests:
            status = r.status if r.status is not None else "no answer"
            lines.append(f"  {r.at_ms:8.0f} ms  {r.method} {r.url}  [{r.kind}] -> {status} in {r.latency_ms:.0f} ms"
                         + (f"  ({r.error})" if r.error else ""))
        lines.append("twiml:")
        for v in self.verbs:
            attrs = " ".join(f"{k}={val!r}" for k, val in v.attrs.items())
            text = f" {v.text!r}" if v.text else ""
            lines.append(f"  {v.call_s:7.1f} s  [{v.leg}] <{v.name}{' ' + attrs if attrs else ''}>{text}")
        for s in self.streams:
            lines.append(f"stream {s.url}: {s.frames_sent} frames ({s.audio_frames} audio, {s.silence_frames} silence, "
                         f"{s.audio_s:.2f} s), closed by {s.closed_by or '?'}"
                         + (f", server sent {dict(Counter(s.server_events))}" if s.server_events else ""))
        for d in self.dials:
            lines.append(f"dial {d.address}: {d.behaviour} -> {d.status}"
                         + (f", talked {d.duration_s} s" if d.duration_s else ""))
        for q in self.queues:
            lines.append(f"queue {q.name}: {q.polls} wait polls, {q.queue_time_s} s, result {q.result}")
        for e in self.errors:
            lines.append(f"ERROR: {e}")
        for w in self.warnings:
            lines.append(f"warning: {w}")
        return "\n".join(lines)
