"""The concurrency storm: 1,000 callers in flight at once over 50 agents, from four
processes (16 worker threads each), with and without the timers switched on."""

from __future__ import annotations

from ivr.routing import storm

CALLS = 1000


def assert_nothing_went_wrong(result):
    figures = {k: v for k, v in result.items() if k != "audit_violations"}  # shown when one fails
    assert result["errors"] == [], figures
    assert result["double_bookings"] == 0 and result["two_agents_one_caller"] == 0, figures
    assert result["audits_failed"] == 0, result["audit_violations"]
    assert result["lost_calls"] == 0 and result["served"] + result["abandoned"] == CALLS, figures
    assert result["final_states"] == ["available"] and result["agents_with_a_call_left"] == [], figures
    assert result["leftovers"] == {"waiting": 0, "held": 0, "calls": 0}, figures
    assert result["index_problems"] == [], figures  # the free/timer/presence indexes match the agents' hashes
    # it was a storm: nearly every caller in the router at once, most of them waiting and
    # asking again, offers missed and routed again
    assert result["max_in_flight"] >= 0.8 * CALLS, figures
    assert result["missed_offers"] > 0 and result["decisions"] > 3 * CALLS, figures


def test_storm_has_no_double_booking_no_lost_call_and_consistent_agents(redis, redis_url, tmp_path):
    result = storm.storm(redis_url, tmp_path, calls=CALLS, processes=4, threads=16, agents=50)
    assert_nothing_went_wrong(result)
    assert result["silent_offers"] == result["lapsed_offers"] == 0, result  # reservations do not lapse here


def test_storm_with_lapsing_offers_missed_call_pauses_and_wrap_ups(redis, redis_url, tmp_path):
    result = storm.storm(redis_url, tmp_path, calls=CALLS, processes=4, threads=16, agents=50, timers=True)
    assert_nothing_went_wrong(result)
    # every offer a caller left unanswered lapsed, and that call was served or gone after all
    assert result["silent_offers"] > 0 and result["lapsed_offers"] == result["silent_offers"], result
    # two misses in a row took agents offline; their desks brought them back
    assert result["agents_back_from_offline"] > 0, result
