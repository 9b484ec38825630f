"""The router against a real Redis: reserving, queueing, fairness, timeouts, the anchors' pain points."""

from __future__ import annotations

import copy
import json

import pytest


def no_heartbeats(mk, **more):
    return mk.rules_with(**{"agents.heartbeat_timeout_s": 0}, **more)


def offline(router, *ids):
    for i in ids:
        assert router.set_status(i, "offline")["ok"]


def test_free_agent_is_reserved_at_once_with_their_address(build, mk):
    router = build()
    d = router.route(mk.call("CA1", "account_security"))
    assert d.kind == "agent" and d.queue == "security"
    assert (d.agent.id, d.agent.name, d.agent.address) == ("cat", "Cat", "+821055550000")
    assert mk.state(router, "cat")["state"] == "reserved"


def test_agent_on_a_call_is_never_offered_a_second_call(build, mk):
    router = build()
    assert router.route(mk.call("CA1", "account_security")).agent.id == "cat"
    router.answered("CA1", "cat")
    assert mk.state(router, "cat")["state"] == "on_call"
    second = router.route(mk.call("CA2", "account_security"))
    assert second.kind == "queued" and second.position == 1
    assert router.poll("CA2").kind == "queued"
    assert mk.state(router, "cat")["call"] == "CA1"


def test_retried_route_for_one_caller_never_reserves_a_second_agent(build, mk):
    router = build()
    first = router.route(mk.call("CA1", "human"))
    again = router.route(mk.call("CA1", "human"))
    assert first.agent.id == again.agent.id
    reserved = [a["id"] for a in router.agents_snapshot() if a["state"] == "reserved"]
    assert reserved == [first.agent.id]


def test_unknown_category_goes_to_the_general_queue(build, mk):
    router = build()
    d = router.route(mk.call("CA1", "something_new"))
    assert d.kind == "agent" and d.queue == "general"


def test_freed_agent_gets_the_highest_priority_longest_waiting_call_not_the_newest(build, mk, clock):
    router = build()
    offline(router, "ann", "bob", "cat")
    assert router.route(mk.call("CA0", "human")).agent.id == "dan"
    router.answered("CA0", "dan")
    for i, (sid, category) in enumerate([("CA1", "human"), ("CA2", "human"), ("CA3", "complaint"), ("CA4", "human")]):
        clock.advance(1)
        assert router.route(mk.call(sid, category, arrived=clock.now)).kind == "queued"
    assert router.dial_result("CA0", "dan", "completed", 30) is None
    assert router.poll("CA4").kind == "queued"
    assert mk.state(router, "dan")["call"] == "CA3"  # priority 30 first
    router.answered("CA3", "dan")
    router.dial_result("CA3", "dan", "completed", 10)
    assert router.poll("CA4").kind == "queued"
    assert mk.state(router, "dan")["call"] == "CA1"  # then the longest waiting, not CA4


def test_longest_idle_counts_from_the_last_call_ended_by_default(build, mk, clock):
    router = build()
    offline(router, "dan")
    assert router.route(mk.call("CA1", "human")).agent.id == "ann"
    assert router.route(mk.call("CA2", "human")).agent.id == "bob"
    router.answered("CA1", "ann")
    router.answered("CA2", "bob")
    router.dial_result("CA1", "ann", "completed", 20)
    clock.advance(10)
    router.dial_result("CA2", "bob", "completed", 20)
    clock.advance(10)
    offline(router, "ann")  # a break does not make ann "fresher"
    router.set_status("ann", "available")
    clock.advance(10)
    assert router.route(mk.call("CA3", "human")).agent.id == "ann"


def test_longest_idle_can_count_from_last_available_when_the_rules_say_so(build, mk, clock):
    router = build(rules=mk.rules_with(idle_since="last_available"))
    offline(router, "dan")
    router.route(mk.call("CA1", "human"))
    router.route(mk.call("CA2", "human"))
    router.answered("CA1", "ann")
    router.answered("CA2", "bob")
    router.dial_result("CA1", "ann", "completed", 20)
    clock.advance(10)
    router.dial_result("CA2", "bob", "completed", 20)
    clock.advance(10)
    offline(router, "ann")
    router.set_status("ann", "available")
    clock.advance(10)
    assert router.route(mk.call("CA3", "human")).agent.id == "bob"


def test_vip_caller_is_placed_ahead_of_earlier_callers(build, mk, clock):
    router = build()
    offline(router, "ann", "bob", "dan")
    router.route(mk.call("CA1", "human", caller="+821011110000"))
    clock.advance(5)
    vip = router.route(mk.call("CA2", "human", caller="+821099990000"))
    assert vip.kind == "queued" and vip.position == 1
    assert router.poll("CA1").position == 2


def test_sticky_caller_goes_back_to_their_previous_agent_when_free(build, mk, clock):
    router = build()
    offline(router, "dan")
    assert router.route(mk.call("CA1", "human", caller="+821077770000")).agent.id == "ann"
    assert router.route(mk.call("CA2", "human", caller="+821088880000")).agent.id == "bob"
    router.answered("CA1", "ann")
    router.answered("CA2", "bob")
    router.dial_result("CA2", "bob", "completed", 5)
    clock.advance(5)
    router.dial_result("CA1", "ann", "completed", 5)  # bob is now the longest idle
    clock.advance(5)
    assert router.route(mk.call("CA3", "human", caller="+821077770000")).agent.id == "ann"


def test_sticky_routing_is_off_when_within_hours_is_zero(build, mk, clock):
    router = build(rules=mk.rules_with(**{"sticky.within_hours": 0}))
    offline(router, "dan")
    router.route(mk.call("CA1", "human", caller="+821077770000"))
    router.route(mk.call("CA2", "human", caller="+821088880000"))
    router.answered("CA1", "ann")
    router.answered("CA2", "bob")
    router.dial_result("CA2", "bob", "completed", 5)
    clock.advance(5)
    router.dial_result("CA1", "ann", "completed", 5)
    clock.advance(5)
    assert router.route(mk.call("CA3", "human", caller="+821077770000")).agent.id == "bob"


X, Y, Z = "+821077770000", "+821088880000", "+821066660000"


def sticky_to_ann(build, mk, clock, general_path):
    """X talked to ann (a call of two hours), Y to bob; bob has been idle longer since.

    ``general_path``: a security call waits (cat is offline) while ann and bob are free, so
    the next route takes the router's general path instead of the one-step ROUTE."""
    router = build(rules=no_heartbeats(mk, **{"sticky.within_hours": 1}))
    offline(router, "dan")
    assert router.route(mk.call("CA1", "human", caller=X)).agent.id == "ann"
    assert router.route(mk.call("CA2", "human", caller=Y)).agent.id == "bob"
    router.answered("CA1", "ann")
    router.answered("CA2", "bob")
    clock.advance(60)
    router.call_ended("CA2")
    clock.advance(2 * 3600)  # the window counts from the end of the call, not from its start
    router.call_ended("CA1")
    if general_path:
        offline(router, "cat")
        assert router.route(mk.call("CAwait", "account_security", caller=Z)).kind == "queued"
    return router


@pytest.mark.parametrize("general_path", [False, True], ids=["one-step", "general-path"])
def test_sticky_caller_within_the_window_gets_their_agent_by_the_routers_clock(build, mk, clock, general_path):
    router = sticky_to_ann(build, mk, clock, general_path)
    clock.advance(3600 - 1)  # 59:59 after the call ended
    assert router.route(mk.call("CA3", "human", caller=X)).agent.id == "ann"
    assert router.route(mk.call("CA4", "human", caller=Z)).agent.id == "bob"


@pytest.mark.parametrize("general_path", [False, True], ids=["one-step", "general-path"])
def test_sticky_caller_after_the_window_gets_the_normal_choice(build, mk, clock, general_path):
    router = sticky_to_ann(build, mk, clock, general_path)
    clock.advance(3600 + 1)
    assert router.route(mk.call("CA3", "human", caller=X)).agent.id == "bob"  # the longest idle


def test_sticky_agent_busy_sends_the_caller_to_someone_else_at_once(build, mk, clock):
    router = sticky_to_ann(build, mk, clock, general_path=False)
    clock.advance(60)
    assert router.route(mk.call("CA4", "human", caller=Z)).agent.id == "bob"
    assert router.route(mk.call("CA5", "human", caller=Y)).agent.id == "ann"
    router.answered("CA5", "ann")  # ann is talking to someone else
    router.call_ended("CA4")  # bob is free again
    d = router.route(mk.call("CA3", "human", caller=X))
    assert d.kind == "agent" and d.agent.id == "bob"  # not held waiting for ann
    assert mk.state(router, "ann")["call"] == "CA5"


def test_skill_minimum_relaxes_with_waiting_time(build, mk, clock):
    router = build(rules=no_heartbeats(mk))
    offline(router, "ann", "dan")  # bob has payment level 1; billing starts at level 2
    assert router.route(mk.call("CA1", "payment", arrived=clock.now)).kind == "queued"
    clock.advance(20)
    assert router.poll("CA1").kind == "queued"
    clock.advance(11)
    d = router.poll("CA1")
    assert d.kind == "agent" and d.agent.id == "bob"


def test_overflow_keeps_the_original_arrival_time(build, mk, clock):
    router = build(rules=no_heartbeats(mk, **{"queues.billing.relax": []}))
    offline(router, "ann", "bob")
    assert router.route(mk.call("CA0", "human")).agent.id == "dan"  # dan (general) is busy with an earlier call
    router.answered("CA0", "dan")
    start = clock.now
    assert router.route(mk.call("CA1", "payment", arrived=start)).queue == "billing"
    clock.advance(30)
    assert router.route(mk.call("CA2", "human", arrived=clock.now)).kind == "queued"
    clock.advance(31)  # CA1 has waited 61 s: it overflowed into general
    assert router.poll("CA1").queue == "general"
    assert router.poll("CA1").position == 1 and router.poll("CA2").position == 2
    router.dial_result("CA0", "dan", "completed", 60)
    assert router.poll("CA2").kind == "queued"
    assert router.poll("CA1").agent.id == "dan"


def test_max_wait_callback_keeps_the_callers_place(build, mk, clock):
    router = build(rules=no_heartbeats(mk))
    offline(router, "ann", "bob", "dan")
    router.route(mk.call("CA1", "payment", arrived=clock.now))
    clock.advance(100)
    router.route(mk.call("CA2", "payment", arrived=clock.now))
    clock.advance(201)
    d = router.poll("CA1")
    assert d.kind == "fallback" and d.callback and d.message == "We will call you back."
    router.call_ended("CA1")  # the caller hangs up to be called back
    assert router.set_status("ann", "available")["ok"]
    assert mk.state(router, "ann")["call"] == "CA1"
    assert router.poll("CA1").agent.id == "ann"


def test_max_wait_fallback_transfers_to_the_number_and_leaves_the_queue(build, mk, clock):
    router = build(rules=no_heartbeats(mk))
    offline(router, "cat")
    router.route(mk.call("CA1", "account_security", arrived=clock.now))
    clock.advance(121)
    d = router.poll("CA1")
    assert (d.kind, d.fallback_number, d.message) == ("fallback", "+15005550123", "Transferring.")
    security = next(q for q in router.queues_snapshot() if q["name"] == "security")
    assert security["waiting"] == 0 and security["abandoned_today"] == 0


def test_queue_position_and_expected_wait_come_from_recent_handling_times(build, mk, clock):
    router = build()
    offline(router, "bob", "dan")
    assert router.route(mk.call("CA0", "payment")).agent.id == "ann"
    router.answered("CA0", "ann")
    clock.advance(50)
    router.dial_result("CA0", "ann", "completed", 50)  # 50 s talk + 10 s wrap-up = 60 s handled
    for sid in ("CA1", "CA2"):
        router.route(mk.call(sid, "payment", arrived=clock.now))
        clock.advance(1)
    # ann is in wrap-up until +10 s: both wait
    d1, d2 = router.poll("CA1"), router.poll("CA2")
    assert (d1.position, d2.position) == (1, 2)
    assert (d1.expected_wait_s, d2.expected_wait_s) == (60, 120)


def test_caller_hanging_up_while_queued_counts_as_abandoned_and_leaves_nothing(build, mk, redis):
    router = build()
    offline(router, "cat")
    router.route(mk.call("CA1", "account_security"))
    router.call_ended("CA1")
    security = next(q for q in router.queues_snapshot() if q["name"] == "security")
    assert security["waiting"] == 0 and security["abandoned_today"] == 1
    assert router.poll("CA1").kind == "fallback"
    assert not redis.hexists("t:{route}:calls", "CA1")


def test_hangup_while_ringing_frees_the_agent_in_the_same_step_without_penalty(build, mk):
    router = build()
    assert router.route(mk.call("CA1", "account_security")).agent.id == "cat"
    router.call_ended("CA1")
    cat = mk.state(router, "cat")
    assert cat["state"] == "available" and cat["call"] is None
    assert router.dial_result("CA1", "cat", "canceled") is None
    assert mk.state(router, "cat")["misses"] == 0
    # a late route for the same call must not queue a ghost caller
    late = router.route(mk.call("CA1", "account_security"))
    assert late.kind == "fallback" and mk.state(router, "cat")["state"] == "available"


def test_failed_offer_leaves_no_agent_reserved_and_routes_the_call_again(build, mk):
    router = build()
    assert router.route(mk.call("CA1", "human")).agent.id == "ann"
    again = router.dial_result("CA1", "ann", "failed")
    assert again.kind == "agent" and again.agent.id == "bob"
    ann = mk.state(router, "ann")
    assert ann["state"] == "paused" and ann["call"] is None
    assert [a["id"] for a in router.agents_snapshot() if a["state"] == "reserved"] == ["bob"]


def test_one_missed_call_pauses_briefly_then_the_agent_is_back_by_itself(build, mk, clock):
    router = build()
    offline(router, "bob", "dan")
    router.route(mk.call("CA1", "payment"))
    d = router.dial_result("CA1", "ann", "no-answer")
    assert d.kind == "queued"
    ann = mk.state(router, "ann")
    assert ann["state"] == "paused" and "missed" in ann["reason"]
    clock.advance(31)
    router.heartbeat("ann")
    assert router.poll("CA1").agent.id == "ann"  # back, and offered the waiting call


def test_repeated_misses_take_the_agent_offline_with_the_reason(build, mk, clock):
    router = build(rules=no_heartbeats(mk))
    offline(router, "bob", "dan")
    for n in range(3):
        assert router.route(mk.call(f"CA{n}", "payment")).agent.id == "ann"
        router.dial_result(f"CA{n}", "ann", "no-answer")
        router.call_ended(f"CA{n}")
        clock.advance(31)
    ann = mk.state(router, "ann")
    assert ann["state"] == "offline" and "missed 3 calls in a row" in ann["reason"]
    assert router.set_status("ann", "available")["ok"]
    assert mk.state(router, "ann")["misses"] == 0


def test_answered_call_resets_the_miss_count(build, mk, clock):
    router = build(rules=no_heartbeats(mk))
    offline(router, "bob", "dan")
    router.route(mk.call("CA1", "payment"))
    router.dial_result("CA1", "ann", "busy")
    clock.advance(31)
    assert router.poll("CA1").agent.id == "ann"
    router.answered("CA1", "ann")
    assert mk.state(router, "ann")["misses"] == 0


def test_wrap_up_is_timed_from_the_queue_and_can_end_early(build, mk, clock):
    router = build()
    router.route(mk.call("CA1", "payment"))
    router.answered("CA1", "ann")
    router.dial_result("CA1", "ann", "completed", 40)
    assert mk.state(router, "ann")["state"] == "wrap_up"
    clock.advance(5)
    assert mk.state(router, "ann")["state"] == "wrap_up"
    clock.advance(6)
    assert mk.state(router, "ann")["state"] == "available"
    router.route(mk.call("CA2", "payment"))
    router.answered("CA2", "ann")
    router.dial_result("CA2", "ann", "completed", 40)
    assert router.set_status("ann", "wrap_up_done")["state"] == "available"


def test_stale_reservation_expires_and_the_call_keeps_its_place(build, mk, clock, redis):
    router = build()
    offline(router, "bob", "dan")
    start = clock.now
    assert router.route(mk.call("CA1", "payment", arrived=start)).agent.id == "ann"
    clock.advance(10)
    later = clock.now
    assert router.route(mk.call("CA2", "payment", arrived=later)).kind == "queued"  # arrived after CA1
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("t:ops:updates")
    clock.advance(36)  # 46 s since the offer and nobody reported its outcome
    router.heartbeat("ann")
    router.queues_snapshot()  # runs the time-outs that are due, assigns nobody
    events, quiet = [], 0
    while quiet < 3:  # None also stands for the (ignored) subscribe confirmation
        m = pubsub.get_message(timeout=0.2)
        quiet = quiet + 1 if m is None else 0
        if m is not None:
            events.append(json.loads(m["data"]))
    pubsub.close()
    assert {"type": "agent", "id": "ann", "state": "available", "reason": "last offer expired unanswered"}.items() \
        <= next(e for e in events if e.get("state") == "available").items()
    assert any(e["type"] == "queue" and e["event"] == "requeued" and e["sid"] == "CA1" for e in events)
    # back in line at its ORIGINAL arrival, not at the time the offer lapsed
    assert redis.zscore("t:{route}:waiting", "CA1") == start
    assert redis.zscore("t:{route}:waiting", "CA2") == later
    # so the freed agent gets CA1 again, ahead of CA2 who arrived after it
    assert router.tick() == 1
    assert mk.state(router, "ann")["call"] == "CA1"
    assert router.poll("CA1").agent.id == "ann"
    assert (router.poll("CA2").kind, router.poll("CA2").position) == ("queued", 1)


def test_a_call_whose_offers_lapse_twice_is_lost_not_offered_forever(build, mk, clock, redis):
    router = build(rules=no_heartbeats(mk))
    offline(router, "bob", "dan")
    assert router.route(mk.call("CA1", "payment", arrived=clock.now)).agent.id == "ann"
    clock.advance(46)  # Twilio never says how the offer went: back in line once, ann gets it again
    router.tick()
    assert mk.state(router, "ann")["call"] == "CA1"
    clock.advance(46)  # ... and again nothing: the call is gone, ann is free for real callers
    router.tick()
    assert mk.state(router, "ann")["state"] == "available" and not mk.state(router, "ann")["call"]
    assert redis.hget("t:{route}:calls", "CA1") is None and redis.zscore("t:{route}:waiting", "CA1") is None
    assert router.route(mk.call("CA2", "payment", arrived=clock.now)).agent.id == "ann"
    # should Twilio ask about the lost call after all, it is sent to a person by the fallback
    assert router.poll("CA1").kind == "fallback"


def test_callback_request_is_offered_with_its_number_and_closed_by_the_agent(build, mk, clock, redis):
    router = build(rules=no_heartbeats(mk))
    offline(router, "ann", "bob", "dan")
    router.route(mk.call("CA1", "payment", arrived=clock.now))
    clock.advance(301)
    assert router.poll("CA1", caller="+821012345678").callback
    router.call_ended("CA1")  # the caller hangs up to be called back
    assert router.callback_requests()["CA1"]["number"] == "+821012345678"
    assert router.set_status("ann", "available")["ok"]
    ann = next(a for a in router.agents_snapshot() if a["id"] == "ann")
    assert ann["state"] == "reserved" and ann["callback"]["number"] == "+821012345678"
    assert ann["callback"]["sid"] == "CA1"
    # the offer lapses (ann's app let it pass): the request keeps its place, however often, and
    # ann pauses as after a missed call, then is offered it again
    for _ in range(2):
        clock.advance(46)
        router.tick()
        assert "CA1" in router.callback_requests()
        assert mk.state(router, "ann")["state"] == "paused"
        clock.advance(31)
        router.tick()
        assert mk.state(router, "ann")["call"] == "CA1"
    wrong = router.callback_done("CA1", "bob", 60)
    assert not wrong["ok"] and "not offered to bob" in wrong["message"]
    assert router.callback_done("CA1", "ann", 95)["ok"]
    assert "CA1" not in router.callback_requests()
    assert mk.state(router, "ann")["state"] == "wrap_up"
    assert not router.callback_done("CA1", "ann", 95)["ok"]  # closed once
    assert redis.zscore("t:{route}:waiting", "CA1") is None and redis.hget("t:{route}:held", "CA1") is None


def test_agent_whose_app_stops_sending_heartbeats_goes_offline_by_itself(build, mk, clock):
    router = build()
    clock.advance(50)
    router.heartbeat("ann")
    clock.advance(20)
    states = {a["id"]: a for a in router.agents_snapshot()}
    assert states["ann"]["state"] == "available"
    assert states["bob"]["state"] == "offline" and "heartbeat" in states["bob"]["reason"]
    assert router.route(mk.call("CA1", "human")).agent.id == "ann"


def test_the_agent_freed_by_a_late_answer_takes_the_next_waiting_call_at_once(build, mk, clock, redis):
    agents = copy.deepcopy(mk.BASE_AGENTS)
    agents["agents"] = [agents["agents"][1], agents["agents"][0], *agents["agents"][2:]]  # bob, ann, cat, dan
    agents["agents"][0]["skills"]["complaints"] = 1  # bob takes complaints too; ann does not
    router = build(rules=mk.rules_with(**{"queues.general.strategy": "fixed_order"}), agents=agents)
    offline(router, "bob", "cat", "dan")
    assert router.route(mk.call("CA1", "human")).agent.id == "ann"
    clock.advance(46)
    router.heartbeat("ann")
    router.set_status("bob", "available")
    router.tick()  # CA1, back in line, is offered to bob
    router.heartbeat("bob")
    assert router.route(mk.call("CA2", "complaint")).kind == "queued"  # only bob could take it
    assert router.answered("CA1", "ann")  # ann had the caller on the line all along
    # bob, freed, got the waiting caller in the same call (read raw: the snapshots assign too)
    assert redis.hmget("t:{route}:agent:bob", "state", "call") == ["reserved", "CA2"]
    assert router.poll("CA2").agent.id == "bob"


def test_a_reserved_agent_whose_app_vanished_goes_offline_and_the_call_goes_on(build, mk, clock, redis):
    """Heartbeats stop while an offer rings: the agent goes offline by itself and the caller,
    back in line at their original arrival, goes to the next free agent."""
    router = build(rules=mk.rules_with(**{"agents.heartbeat_timeout_s": 20}))
    offline(router, "dan")
    arrived = clock.now
    assert router.route(mk.call("CA1", "human", arrived=arrived)).agent.id == "ann"
    for _ in range(2):
        clock.advance(10.5)
        router.heartbeat("bob")  # ann's app sends nothing
    assert router.tick() == 1
    ann = mk.state(router, "ann")
    assert ann["state"] == "offline" and "heartbeat" in ann["reason"] and not ann["call"]
    assert router.poll("CA1").agent.id == "bob"
    assert json.loads(redis.hget("t:{route}:calls", "CA1"))["arrived"] == arrived


def test_agent_with_a_call_cannot_be_set_available_or_offline_underneath_it(build, mk):
    router = build()
    router.route(mk.call("CA1", "account_security"))
    assert router.set_status("cat", "available")["ok"] is False
    router.answered("CA1", "cat")
    result = router.set_status("cat", "offline")
    assert result["ok"] is False and result["state"] == "on_call"
    assert router.set_status("nobody", "available")["message"].startswith("no agent")


def test_an_agent_who_went_offline_while_the_offer_rang_and_answered_anyway_has_the_call(build, mk, clock, redis):
    """Cat taps 'offline' while her phone rings, then picks up: the caller talks to her. The
    call, put back in line by the 'offline', was offered to Dan meanwhile (never rung): that
    offer goes, so Dan is free for the next caller instead of reserved for a ghost."""
    from ivr.routing.ledger import index_problems

    router = build(available=False)
    router.set_status("cat", "available")
    assert router.route(mk.call("CA1", "complaint")).agent.id == "cat"
    router.set_status("cat", "offline", "break")
    router.set_status("dan", "available")
    assert mk.state(router, "dan")["call"] == "CA1"
    assert router.answered("CA1", "cat")
    assert (mk.state(router, "cat")["state"], mk.state(router, "cat")["call"]) == ("on_call", "CA1")
    assert mk.state(router, "dan")["state"] == "available" and not mk.state(router, "dan")["call"]
    assert router.route(mk.call("CA2", "complaint")).agent.id == "dan"
    assert index_problems(redis, router.keys, [a.id for a in router.rules.roster.agents]) == []
    # one on another call cannot be put on this one by a stray webhook
    assert router.answered("CA2", "cat") is False
    # the call over, she is offline again, as she asked, and offered nothing
    router.call_ended("CA1")
    cat = mk.state(router, "cat")
    assert (cat["state"], cat["reason"]) == ("offline", "break")
    assert router.route(mk.call("CA3", "complaint")).kind == "queued"  # dan has CA2
    router.set_status("cat", "available")
    assert mk.state(router, "cat")["call"] == "CA3"
    router.answered("CA3", "cat")
    router.call_ended("CA3")
    assert mk.state(router, "cat")["state"] in ("wrap_up", "available")  # back at work: no longer leaving


def test_an_agent_who_answers_after_their_offer_lapsed_takes_the_call_from_an_unrung_offer(build, mk, clock, redis):
    """Ann's phone rang past her reservation; meanwhile the call, back in line, was offered to
    Bob (never rung: the caller was in Ann's dial). Ann picks up: she has the caller, and
    Bob's offer goes in the same step, so nobody stays reserved for a call they cannot get."""
    from ivr.routing.ledger import index_problems

    agents = copy.deepcopy(mk.BASE_AGENTS)
    agents["agents"] = [agents["agents"][1], agents["agents"][0], *agents["agents"][2:]]  # bob, ann, cat, dan
    router = build(rules=mk.rules_with(**{"queues.general.strategy": "fixed_order"}), agents=agents)
    offline(router, "bob", "dan")
    assert router.route(mk.call("CA1", "human")).agent.id == "ann"
    clock.advance(46)  # ann's reservation (45 s) ran out
    router.heartbeat("ann")
    router.set_status("bob", "available")
    router.tick()
    assert mk.state(router, "bob")["state"] == "reserved" and mk.state(router, "bob")["call"] == "CA1"
    assert router.answered("CA1", "ann")
    assert (mk.state(router, "ann")["state"], mk.state(router, "ann")["call"]) == ("on_call", "CA1")
    assert mk.state(router, "bob")["state"] == "available" and not mk.state(router, "bob")["call"]
    assert router.poll("CA1").agent.id == "ann"
    assert index_problems(redis, router.keys, [a.id for a in router.rules.roster.agents]) == []
    # once the caller hung up, a late or repeated answer puts nobody on the call
    router.call_ended("CA1")
    router.set_status("ann", "wrap_up_done")
    assert mk.state(router, "ann")["state"] == "available"
    assert not router.answered("CA1", "ann") and mk.state(router, "ann")["state"] == "available"
    # once Bob is on the call, a late pick-up elsewhere does not take it
    assert router.route(mk.call("CA2", "human")).agent.id == "bob"
    router.answered("CA2", "bob")
    router.set_status("dan", "available")
    assert not router.answered("CA2", "dan")
    assert mk.state(router, "bob")["call"] == "CA2" and mk.state(router, "dan")["state"] == "available"


def _callback_offered_to_ann(build, mk, clock):
    """A payment caller past the queue's max wait asks for a callback; Ann logs in and is offered it."""
    router = build(rules=no_heartbeats(mk), available=False)
    assert router.route(mk.call("CB1", "payment", arrived=clock.now)).kind == "queued"
    clock.advance(301)
    assert router.poll("CB1", caller="+821011112222").callback
    router.set_status("ann", "available")
    assert mk.state(router, "ann")["call"] == "CB1"
    return router


def test_a_callback_offer_let_pass_counts_as_a_missed_call_not_offered_straight_back(build, mk, clock, redis):
    router = _callback_offered_to_ann(build, mk, clock)
    assert router.route(mk.call("CA2", "payment", arrived=clock.now)).kind == "queued"  # a live caller behind it
    router.set_status("bob", "available")  # payment 1: not for CA2 before its relaxation
    clock.advance(46)  # ann's app let the callback offer pass
    router.tick()
    ann = mk.state(router, "ann")
    assert (ann["state"], ann["misses"]) == ("paused", 1)
    assert ann["reason"] == "let a callback request pass; back by itself shortly"
    assert mk.state(router, "bob")["callback"]["sid"] == "CB1"  # the request went on, not back to ann
    clock.advance(31)
    router.tick()
    assert mk.state(router, "ann")["call"] == "CA2"
    assert router.poll("CA2").agent.id == "ann"


def test_a_callback_request_stays_with_the_agent_calling_back_while_their_app_is_alive(build, mk, clock, redis):
    """No 'accept' step: the agent sees the request and calls. However long that takes, the
    request is theirs while their app sends heartbeats (not offered to Bob as well, and their
    callback-done is taken); when the app goes silent it moves on."""
    router = build(rules=mk.rules_with(**{"agents.heartbeat_timeout_s": 60}), available=False)
    assert router.route(mk.call("CB1", "payment", arrived=clock.now)).kind == "queued"
    clock.advance(301)
    assert router.poll("CB1", caller="+821011112222").callback
    router.set_status("ann", "available")
    router.set_status("bob", "available")
    assert mk.state(router, "ann")["call"] == "CB1"
    for _ in range(6):  # three minutes on the phone with the caller, the app beating every 30 s
        clock.advance(30)
        router.heartbeat("ann")
        router.heartbeat("bob")
        router.tick()
        assert (mk.state(router, "ann")["state"], mk.state(router, "ann")["call"]) == ("reserved", "CB1")
        assert mk.state(router, "bob")["state"] == "available"
    assert router.callback_done("CB1", "ann", talk_s=170)["ok"]
    # a second request, and ann's app dies: the request leaves her
    offline(router, "bob")
    assert router.route(mk.call("CB3", "payment", arrived=clock.now)).kind == "queued"
    for _ in range(11):  # ann wraps up and waits, her app beating
        clock.advance(28)
        router.heartbeat("ann")
    router.poll("CB3", caller="+821033334444")
    assert mk.state(router, "ann")["call"] == "CB3"
    for _ in range(3):
        clock.advance(30)  # ann's app sends nothing
        router.tick()
    assert mk.state(router, "ann")["state"] == "offline" and not mk.state(router, "ann")["call"]
    assert redis.hget("t:{route}:held", "CB3") is None and "CB3" in router.ledger.snapshot(
        ["ann", "bob"], router._day(router.rules, clock.now)).waiting


def test_an_agent_who_lets_every_callback_offer_pass_goes_offline_after_max_missed(build, mk, clock, redis):
    router = _callback_offered_to_ann(build, mk, clock)
    for n in (1, 2):
        assert mk.state(router, "ann")["call"] == "CB1"
        clock.advance(46)
        router.tick()
        assert (mk.state(router, "ann")["state"], mk.state(router, "ann")["misses"]) == ("paused", n)
        clock.advance(31)
        router.tick()
    clock.advance(46)
    router.tick()
    ann = mk.state(router, "ann")
    assert (ann["state"], ann["reason"]) == ("offline", "missed 3 offers in a row; set status available when back")
    assert "CB1" in router.callback_requests() and redis.zscore("t:{route}:waiting", "CB1") is not None
    assert router.set_status("ann", "available")["ok"] and mk.state(router, "ann")["misses"] == 0
    assert mk.state(router, "ann")["call"] == "CB1"
