"""The call session state machine, as pure transitions."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ivr.calls import InvalidTransition, Session, advance, after_utterance


def test_happy_path_walks_every_state_in_order():
    s = Session(sid="CA1")
    for i, state in enumerate(["listening", "understanding", "routing", "connecting", "connected", "ended"], 1):
        advance(s, state, now=float(i))
    assert s.state == "ended" and s.ended_at == 6.0 and s.updated_at == 6.0


@pytest.mark.parametrize("start,to", [
    ("greeting", "connected"), ("listening", "queued"), ("connected", "routing"),
    ("ended", "listening"), ("queued", "listening"),
])
def test_moves_the_flow_never_makes_are_refused(start, to):
    s = Session(sid="CA1", state=start)
    with pytest.raises(InvalidTransition):
        advance(s, to, now=1.0)
    assert s.state == start


def test_any_live_state_can_end():
    for state in ("greeting", "listening", "understanding", "routing", "queued", "connecting", "connected"):
        assert advance(Session(sid="x", state=state), "ended", 1.0).state == "ended"


def test_no_answer_goes_back_to_routing_and_reprompt_back_to_listening():
    assert advance(Session(sid="x", state="connecting"), "routing", 1.0).state == "routing"
    assert advance(Session(sid="x", state="understanding"), "listening", 1.0).state == "listening"


def test_hash_round_trip_keeps_types():
    s = Session(sid="CA9", state="queued", confidence=0.87, reprompts=1, routed_on_first_utterance=True,
                transcripts=["결제 가 안 돼요"], dial_outcomes=[{"agent": "a1", "status": "busy"}],
                speech={"audio_s": 2.5})
    back = Session.from_hash(s.to_hash())
    assert back == s


@dataclass
class P:
    category: str
    runner_up: str
    decision: str
    confidence: float = 0.5
    runner_up_confidence: float = 0.2


def test_confident_prediction_routes_at_once():
    step = after_utterance(Session(sid="x"), "speech", "refund please", P("payment", "complaint", "route"))
    assert step.action == "route" and step.category == "payment"


def test_unsure_prediction_asks_once_naming_the_two_topics():
    step = after_utterance(Session(sid="x"), "speech", "it does not work", P("technical_fault", "payment", "reprompt"))
    assert step.action == "reprompt" and step.topics == ("technical_fault", "payment")


def test_second_unsure_answer_routes_to_the_likeliest_or_general():
    asked = Session(sid="x", reprompts=1)
    assert after_utterance(asked, "speech", "hmm", P("payment", "complaint", "reprompt")).category == "payment"
    step = after_utterance(asked, "speech", "weather", P("out_of_scope", "payment", "fallback"))
    assert step.action == "fallback_route" and step.category == "out_of_scope"


def test_silence_asks_again_then_goes_to_a_person():
    assert after_utterance(Session(sid="x"), "no_speech", "", None).action == "reprompt_generic"
    assert after_utterance(Session(sid="x", reprompts=1), "no_speech", "", None).action == "fallback_route"


def test_out_of_scope_first_time_asks_generically():
    step = after_utterance(Session(sid="x"), "speech", "what's the weather", P("out_of_scope", "payment", "fallback"))
    assert step.action == "reprompt_generic"


@pytest.mark.parametrize("outcome", ["asr_unavailable", "unsupported_audio"])
def test_when_nothing_could_be_heard_the_caller_goes_to_a_person_without_being_asked_again(outcome):
    step = after_utterance(Session(sid="x"), outcome, "", None)
    assert step.action == "fallback_route" and step.category == "out_of_scope"
