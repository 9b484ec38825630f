"""The concurrency storm: 1,000 callers over 50 agents from two processes of 40 threads each."""

from __future__ import annotations

from ivr.routing import bench


def test_storm_has_no_double_booking_no_lost_call_and_consistent_agents(redis, redis_url, tmp_path):
    result = bench.storm(redis_url, tmp_path, calls=1000, processes=2, threads=40, hold_s=0.01, agents=50)
    assert result["errors"] == []
    assert result["double_bookings"] == 0 and result["two_agents_one_caller"] == 0
    assert result["audits_failed"] == 0, result["audit_violations"]
    assert result["lost_calls"] == 0 and result["served"] + result["abandoned"] == 1000
    # the storm really contended: offers were missed and re-routed, callers waited and polled
    assert result["missed_offers"] > 0 and result["decisions"] > 1000 + result["missed_offers"]
    assert result["final_states"] == ["available"] and result["agents_with_a_call_left"] == []
    assert result["leftovers"] == {"waiting": 0, "held": 0, "calls": 0}
    assert result["index_problems"] == []  # the free/timer/presence indexes match every agent's hash
