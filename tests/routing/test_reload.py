"""Hot reload: good edits reach every worker within the interval; bad edits are refused."""

from __future__ import annotations

import copy


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
