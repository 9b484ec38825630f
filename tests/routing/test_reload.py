"""Hot reload: good edits reach every worker within the interval; bad edits are refused."""

from __future__ import annotations

import copy

import pytest


def test_good_edit_takes_effect_after_the_reload_interval_without_dropping_calls(build, mk, clock, tmp_path, redis):
    router = build()
    for i in ("ann", "bob", "dan"):
        router.set_status(i, "offline")
    router.route(mk.call("CA1", "human", caller="+821011110000"))
    old = router.rules.version
    mk.write(tmp_path / "rules.yaml", mk.rules_with(**{"vip.numbers": ["+821022220000"]}))
    clock.advance(1)
    assert router.rules.version == old  # not yet: the interval has not passed
    clock.advance(2)
    assert router.rules.version != old
    vip = router.route(mk.call("CA2", "human", caller="+821022220000"))
    assert vip.position == 1 and router.poll("CA1").position == 2  # the waiting call is still there
    shared = redis.hgetall("t:{route}:rules")
    assert shared["version"] == router.rules.version and float(shared["loaded_at"]) == clock.now
    assert shared["refused"] == ""


def test_bad_edit_is_refused_with_file_and_line_and_the_last_good_version_stays(build, mk, clock, tmp_path, redis):
    router = build()
    good = router.rules.version
    mk.write(tmp_path / "rules.yaml", mk.rules_with(**{"categories.payment.queue": "biling"}))
    clock.advance(3)
    assert router.route(mk.call("CA1", "payment")).agent.id == "ann"
    assert router.rules.version == good
    refused = redis.hget("t:{route}:rules", "refused")
    assert "rules.yaml:" in refused and "categories.payment.queue: unknown queue 'biling'" in refused
    assert redis.hget("t:{route}:rules", "version") == good
    mk.write(tmp_path / "rules.yaml", mk.rules_with(**{"queues.billing.wrap_up_s": 5}))
    clock.advance(3)
    router.heartbeat("ann")
    assert router.rules.version != good and router.rules.rules.queues["billing"].wrap_up_s == 5
    assert redis.hget("t:{route}:rules", "refused") == ""


def test_other_workers_adopt_a_good_edit_through_redis(build, mk, clock, tmp_path, redis):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    worker_a = build(folder=tmp_path / "a")
    worker_b = build(folder=tmp_path / "b", available=False)
    assert worker_a.rules.version == worker_b.rules.version
    agents = copy.deepcopy(mk.BASE_AGENTS)
    agents["agents"].append({"id": "eve", "name": "Eve", "address": "client:eve", "skills": ["general"]})
    mk.write(tmp_path / "a" / "agents.yaml", agents)  # ops edit the roster on machine A only
    clock.advance(3)
    worker_a.tick()
    worker_b.tick()
    assert worker_b.rules.version == worker_a.rules.version
    eve = next(a for a in worker_b.agents_snapshot() if a["id"] == "eve")
    assert eve["state"] == "offline" and eve["reason"] == "not logged in yet"
    assert worker_b.set_status("eve", "available")["ok"]


def test_a_worker_starting_with_broken_files_uses_the_shared_good_version(build, mk, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    good = build(folder=tmp_path / "a")
    broken = mk.rules_with(**{"queues.general.overflow": {"after_s": 5, "to": "general"}})
    late = build(rules=broken, folder=tmp_path / "b", available=False)
    assert late.rules.version == good.rules.version
    assert "overflow cycle general -> general" in late.source.refused


def test_undoing_a_refused_edit_clears_the_refusal_everywhere(build, clock, tmp_path, redis):
    router = build()
    good = (tmp_path / "rules.yaml").read_text()
    (tmp_path / "rules.yaml").write_text(good + "\nbogus_key: 1\n")
    clock.advance(3)
    assert router.rules.version and redis.hget("t:{route}:rules", "refused") and router.source.refused
    (tmp_path / "rules.yaml").write_text(good)  # ops undo the edit: the very version in force
    clock.advance(3)
    router.tick()
    assert redis.hget("t:{route}:rules", "refused") == "" and router.source.refused == ""


def test_a_refusal_goes_when_a_later_good_edit_is_put_in_force(build, mk, clock, tmp_path, redis):
    router = build()
    mk.write(tmp_path / "rules.yaml", mk.rules_with(**{"categories.payment.queue": "biling"}))
    clock.advance(3)
    router.tick()
    assert router.source.refused
    mk.write(tmp_path / "rules.yaml", mk.rules_with(**{"queues.billing.wrap_up_s": 5}))
    clock.advance(3)
    router.tick()
    assert router.rules.rules.queues["billing"].wrap_up_s == 5
    assert redis.hget("t:{route}:rules", "refused") == "" and router.source.refused == ""


def without(mk, agent_id):
    agents = copy.deepcopy(mk.BASE_AGENTS)
    agents["agents"] = [a for a in agents["agents"] if a["id"] != agent_id]
    return agents


def test_a_callback_offered_to_an_agent_removed_from_the_roster_is_offered_to_another(build, mk, clock, tmp_path,
                                                                                        redis):
    router = build(available=False)
    assert router.route(mk.call("CB1", "payment")).kind == "queued"
    clock.advance(301)
    assert router.poll("CB1", caller="+821011112222").callback
    router.set_status("ann", "available")  # CB1 offered to ann: her app shows whom to call back
    assert mk.state(router, "ann")["call"] == "CB1"
    mk.write(tmp_path / "agents.yaml", without(mk, "ann"))  # ann leaves the roster
    clock.advance(3)
    router.tick()
    assert redis.hget("t:{route}:held", "CB1") is None and redis.zscore("t:{route}:waiting", "CB1") is not None
    ann = redis.hgetall("t:{route}:agent:ann")
    assert ann["state"] == "offline" and ann["reason"] == "removed from the roster"
    assert "ann" not in redis.zrange("t:{route}:timers", 0, -1)
    router.set_status("bob", "available")  # bob (payment 1) may take it after the relaxation
    assert mk.state(router, "bob")["callback"]["sid"] == "CB1"
    assert router.callback_done("CB1", "bob", 60)["ok"]
    assert router.callback_requests() == {}


def test_a_waiting_call_offered_to_an_agent_removed_from_the_roster_goes_back_in_line(build, mk, clock, tmp_path,
                                                                                       redis):
    router = build(available=False)
    start = clock.now
    assert router.route(mk.call("CA1", "human", arrived=start)).kind == "queued"
    router.set_status("dan", "available")  # CA1 offered to dan
    assert redis.hget("t:{route}:held", "CA1") == "dan"
    mk.write(tmp_path / "agents.yaml", without(mk, "dan"))
    clock.advance(3)
    d = router.poll("CA1")  # the caller still waits: not the fallback, not a dial to no address
    assert (d.kind, d.position) == ("queued", 1)
    assert redis.zscore("t:{route}:waiting", "CA1") == start  # at its original arrival
    assert redis.hget("t:{route}:agent:dan", "reason") == "removed from the roster"
    router.set_status("ann", "available")
    d = router.poll("CA1")
    assert d.kind == "agent" and (d.agent.id, d.agent.address) == ("ann", "client:ann")


@pytest.mark.parametrize("asked_by", ["poll", "route"])
def test_a_call_still_held_off_the_roster_is_taken_back_not_dialled_at_no_address(build, mk, clock, tmp_path,
                                                                                   redis, asked_by):
    """An offer to an agent off the roster the router reads anyway (left by a router before
    REINDEX took such offers back, or read by a worker just before it did): it goes, and
    the call is decided anew."""
    router = build(available=False)
    start = clock.now
    assert router.route(mk.call("CA1", "human", arrived=start)).kind == "queued"
    mk.write(tmp_path / "agents.yaml", without(mk, "dan"))
    clock.advance(3)
    router.tick()
    redis.zrem("t:{route}:waiting", "CA1")
    redis.hset("t:{route}:held", "CA1", "dan")
    redis.hset("t:{route}:agent:dan", mapping={"state": "reserved", "call": "CA1", "until": clock.now + 45})
    router.set_status("bob", "available")
    d = router.poll("CA1") if asked_by == "poll" else router.route(mk.call("CA1", "human", arrived=start))
    assert d.kind == "agent" and (d.agent.id, d.agent.address) == ("bob", "sip:bob@pbx.example.com")
    assert redis.hget("t:{route}:held", "CA1") == "bob"
    dan = redis.hgetall("t:{route}:agent:dan")
    assert (dan["state"], dan["reason"]) == ("offline", "removed from the roster")


@pytest.mark.parametrize("ended_by", ["hangup", "dial_completed"])
def test_an_agent_removed_from_the_roster_mid_call_keeps_talking_until_the_call_ends(build, mk, clock, tmp_path,
                                                                                      redis, ended_by):
    from ivr.routing.ledger import index_problems

    router = build(available=False)
    router.set_status("dan", "available")
    assert router.route(mk.call("CA1", "complaint")).agent.id == "dan"
    assert router.answered("CA1", "dan")
    mk.write(tmp_path / "agents.yaml", without(mk, "dan"))
    clock.advance(3)
    router.tick()
    assert [a.id for a in router.rules.roster.agents] == ["ann", "bob", "cat"]
    assert redis.hget("t:{route}:agent:dan", "state") == "on_call"
    assert redis.hget("t:{route}:held", "CA1") == "dan"
    if ended_by == "hangup":  # the call ends as any other
        router.call_ended("CA1")
    else:
        assert router.dial_result("CA1", "dan", "completed", 30) is None
        router.call_ended("CA1")
    assert redis.hget("t:{route}:agent:dan", "state") == "available"
    assert redis.hget("t:{route}:held", "CA1") is None and redis.hget("t:{route}:calls", "CA1") is None
    assert index_problems(redis, router.keys, [a.id for a in router.rules.roster.agents]) == []
    router.set_status("cat", "available")
    assert router.route(mk.call("CA2", "complaint")).agent.id == "cat"  # the roster's own
