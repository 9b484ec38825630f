"""The call session: a small state machine over plain data, with no I/O.

    greeting → listening → understanding → routing → queued / connecting → connected → ended

``understanding`` may go back to ``listening`` once (the clarifying re-prompt), and
``connecting`` back to ``routing`` when the agent does not answer. Any state may go to
``ended`` (the caller hung up). The Redis adapter (``ivr.telephony.sessions``) stores a
:class:`Session` as a hash; the webhooks only ever change it through :func:`advance`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

State = Literal["greeting", "listening", "understanding", "routing", "queued", "connecting", "connected", "ended"]

TRANSITIONS: dict[str, frozenset[str]] = {
    "greeting": frozenset({"listening", "routing", "ended"}),
    "listening": frozenset({"understanding", "routing", "ended"}),
    "understanding": frozenset({"listening", "routing", "ended"}),
    "routing": frozenset({"queued", "connecting", "ended"}),
    "queued": frozenset({"connecting", "routing", "ended"}),
    "connecting": frozenset({"connected", "routing", "queued", "ended"}),
    "connected": frozenset({"ended"}),
    "ended": frozenset(),
}

MAX_REPROMPTS = 1
# Speech outcomes where nothing could be heard at all (no model, audio we cannot decode).
UNHEARD = frozenset({"asr_unavailable", "unsupported_audio"})


class InvalidTransition(ValueError):
    """A webhook arrived that does not fit where the call is (a retry, or out of order)."""


@dataclass
class Session:
    sid: str
    state: str = "greeting"
    hotline: str = ""
    language: str = ""
    caller: str = ""
    to: str = ""
    token: str = ""
    started_at: float = 0.0
    updated_at: float = 0.0
    listen_started_at: float = 0.0
    partial: str = ""
    transcript: str = ""
    transcripts: list[str] = field(default_factory=list)
    recordings: list[str] = field(default_factory=list)  # one WAV per listening turn (calls.record_audio)
    speech_outcome: str = ""
    speech: dict[str, Any] = field(default_factory=dict)
    category: str = ""
    confidence: float = 0.0
    runner_up: str = ""
    runner_up_confidence: float = 0.0
    reprompts: int = 0
    routed_on_first_utterance: bool = False
    queue: str = ""
    queued_at: float = 0.0
    agent: str = ""
    agent_address: str = ""
    dial_outcomes: list[dict[str, Any]] = field(default_factory=list)
    fallback: str = ""
    callback_message: str = ""
    outcome: str = ""
    ended_at: float = 0.0
    corrected_category: str = ""  # what an agent said the call was really about (the feedback loop)

    def to_hash(self) -> dict[str, str]:
        out = {}
        for k, v in asdict(self).items():
            out[k] = json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict, bool)) else str(v)
        return out

    @classmethod
    def from_hash(cls, data: dict[str, str]) -> "Session":
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                continue
            raw = data[f.name]
            kind = str(f.type)  # a string: this module uses postponed annotations
            if kind == "float":
                kwargs[f.name] = float(raw or 0)
            elif kind == "int":
                kwargs[f.name] = int(float(raw or 0))
            elif kind == "bool":
                kwargs[f.name] = raw in ("true", "True", "1")
            elif kind.startswith(("list", "dict")):
                kwargs[f.name] = json.loads(raw) if raw else ([] if kind.startswith("list") else {})
            else:
                kwargs[f.name] = raw
        return cls(**kwargs)

    @property
    def live(self) -> bool:
        return self.state != "ended"


def advance(session: Session, to: str, now: float, **changes: Any) -> Session:
    """Move the session to state ``to`` with ``changes``; refuses moves the flow never makes."""
    if to != session.state and to not in TRANSITIONS[session.state]:
        raise InvalidTransition(f"call {session.sid}: cannot go from {session.state} to {to}")
    for key, value in changes.items():
        if not hasattr(session, key):
            raise AttributeError(f"Session has no field {key!r}")
        setattr(session, key, value)
    session.state = to
    session.updated_at = now
    if to == "ended" and not session.ended_at:
        session.ended_at = now
    return session


@dataclass(frozen=True)
class Step:
    """What the call flow does after hearing the caller."""

    action: Literal["route", "reprompt", "reprompt_generic", "fallback_route"]
    category: str = ""
    topics: tuple[str, str] | None = None  # the two likeliest categories, for the re-prompt


def after_utterance(session: Session, speech_outcome: str, text: str, prediction: Any | None) -> Step:
    """Decide what follows an utterance: route, ask once more, or send to the general queue.

    ``prediction`` has ``category``, ``runner_up`` and ``decision`` (route/reprompt/fallback)
    as the classifier gives them, or is None when there was nothing to classify.
    """
    can_ask = session.reprompts < MAX_REPROMPTS
    if speech_outcome in UNHEARD:  # our ears failed, not the caller: asking again cannot help
        return Step("fallback_route", "out_of_scope")
    if speech_outcome == "no_speech" or not text.strip() or prediction is None:
        return Step("reprompt_generic") if can_ask else Step("fallback_route", "out_of_scope")
    if prediction.decision == "route" and prediction.category != "out_of_scope":
        return Step("route", prediction.category)
    if can_ask:
        first, second = prediction.category, prediction.runner_up
        if first and second and first != second and "out_of_scope" not in (first, second):
            return Step("reprompt", topics=(first, second))
        return Step("reprompt_generic")
    # Asked once already: a likely-enough category still beats the general queue.
    if prediction.decision == "reprompt" and prediction.category != "out_of_scope":
        return Step("route", prediction.category)
    return Step("fallback_route", "out_of_scope")
