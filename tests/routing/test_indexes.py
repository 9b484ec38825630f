"""The free-agent indexes and the one-step ROUTE: same choices as the pure selection, indexes
always matching the agents' hashes, one round trip for a new call while nobody waits."""

from __future__ import annotations

import copy
import random

import pytest

from ivr.keys import Keys
from ivr.routing.ledger import index_problems


def no_heartbeats(mk, **more):
    return mk.rules_with(**{"agents.heartbeat_timeout_s": 0}, **more)


def problems(router, redis):
    return index_problems(redis, router.keys, [a.id for a in router.rules.roster.agents])


class Counted:
    """A redis-py client whose connections count what they send to the server: one send
    is one round trip (a pipeline goes out in one send)."""

    def __init__(self, url: str):
        import redis as redis_py

        counter = self

        class Connection(redis_py.UnixDomainSocketConnection):
            def send_packed_command(self, command, check_health=True):
                counter.sent.append(command)
                return super().send_packed_command(command, check_health)

        self.sent: list = []
        path = url.split("://", 1)[1].split("?", 1)[0]
        self.client = redis_py.Redis(connection_pool=redis_py.ConnectionPool(
            connection_class=Connection, path=path, decode_responses=True))

    def round_trips(self, fn):
        self.sent.clear()
        result = fn()
        return result, len(self.sent)


@pytest.fixture
def counted(redis, redis_url):
    assert redis_url.startswith("unix://")
    c = Counted(redis_url)
    yield c
    c.client.close()


def test_a_new_call_while_nobody_waits_is_one_round_trip(build, mk, counted, redis, tmp_path, clock):
    from ivr.routing.router import Router

    build()
    router = Router(counted.client, Keys("t"), tmp_path / "rules.yaml", tmp_path / "agents.yaml", clock=clock)
    router.route(mk.call("CA0", "human"))  # the first call of a kind writes who may take it
    decision, trips = counted.round_trips(lambda: router.route(mk.call("CA1", "human")))
    assert decision.kind == "agent" and trips == 1
    _, trips = counted.round_trips(lambda: router.call_ended("CA1"))  # hang-up, nobody waiting: one too
    assert trips == 1
    # nobody free for it (ann holds CA0): queued in the same step; its place in line takes one more read
    for a in ("bob", "dan"):
        router.set_status(a, "offline")
    decision, trips = counted.round_trips(lambda: router.route(mk.call("CA2", "human")))
    assert decision.kind == "queued" and decision.position == 1 and trips == 2


@pytest.mark.parametrize("strategy,idle_since", [
    ("longest_idle", "last_call_ended"), ("longest_idle", "last_available"), ("fewest_calls", "last_call_ended"),
    ("least_talk_time", "last_available"), ("round_robin", "last_call_ended"), ("fixed_order", "last_call_ended"),
])
def test_one_step_route_picks_what_the_pure_selection_picks(build, mk, redis, clock, strategy, idle_since):
    """Random histories; before each new call, the pure plan over a full snapshot (simulate)
    and the one-step ROUTE must name the same agent, and the indexes must match the hashes."""
    agents = {"agents": [
        {"id": f"g{i}", "name": f"G{i}", "address": f"client:g{i}",
         "skills": {"general": 1, **({"payment": 1 + i % 2} if i % 3 else {}), **({"complaints": 1} if i % 4 == 0 else {})}}
        for i in range(9)]}
    rules = no_heartbeats(mk, idle_since=idle_since, **{
        "queues.general.strategy": strategy, "queues.billing.strategy": strategy, "queues.general.wrap_up_s": 3,
        "queues.billing.relax": [], "categories.account_security.queue": "general"})
    router = build(rules=rules, agents=agents)
    rng = random.Random(f"{strategy}{idle_since}")
    live: list[tuple[str, str, bool]] = []  # (sid, agent, answered)
    compared = 0
    for n in range(140):
        clock.advance(rng.choice([0, 0.5, 1, 2, 4]))
        roll = rng.random()
        if roll < 0.45:
            router.tick()  # time-outs done, so the snapshot shows what ROUTE will see
            call = mk.call(f"CA{n}", rng.choice(["human", "payment", "human", "complaint"]), arrived=clock.now)
            expected = router.simulate(call)["decision"]
            got = router.route(call)
            assert got.kind == expected["kind"], (n, got, expected)
            if got.kind == "agent":
                assert got.agent.id == expected["agent"]["id"], (n, got.agent.id, expected["agent"]["id"])
                live.append((call.sid, got.agent.id, False))
                compared += 1
            else:
                router.call_ended(call.sid)  # keep the line empty: that is when the one step decides
        elif roll < 0.65 and live:
            sid, agent, answered = live.pop(rng.randrange(len(live)))
            if not answered:
                router.answered(sid, agent)
                live.append((sid, agent, True))
            else:
                router.dial_result(sid, agent, "completed", rng.choice([5, 30, 90]))
                router.call_ended(sid)
        elif roll < 0.75 and live:
            sid, agent, answered = live.pop(rng.randrange(len(live)))
            if not answered:
                d = router.dial_result(sid, agent, rng.choice(["no-answer", "busy"]))
                if d is not None and d.kind == "agent":
                    live.append((sid, d.agent.id, False))
            router.call_ended(sid)
            live = [x for x in live if x[0] != sid]
        elif roll < 0.85:
            agent = rng.choice(agents["agents"])["id"]
            router.set_status(agent, rng.choice(["offline", "available", "wrap_up_done"]))
        assert problems(router, redis) == [], n
    assert compared >= 20


def test_route_alone_expires_a_lost_heartbeat_and_a_finished_wrap_up(build, mk, redis, clock):
    router = build(rules=mk.rules_with(**{"queues.general.wrap_up_s": 20}))
    for a in ("ann", "dan"):
        router.set_status(a, "offline")
    assert router.route(mk.call("CA1", "human")).agent.id == "bob"
    router.answered("CA1", "bob")
    router.dial_result("CA1", "bob", "completed", 10)  # bob wraps up for 20 s
    clock.advance(21)
    router.heartbeat("bob")
    router.route(mk.call("CA0", "account_security"))  # warm: cat is reserved now
    clock.advance(45)  # ann, dan offline; cat's offer is stale and cat sent no heartbeat for 66 s
    router.heartbeat("bob")
    got = router.route(mk.call("CA2", "human"))
    assert got.kind == "agent" and got.agent.id == "bob"
    states = {a["id"]: (a["state"], a["reason"]) for a in router.agents_snapshot()}
    assert states["cat"][0] == "offline" and "heartbeat" in states["cat"][1]
    assert problems(router, redis) == []


def test_indexes_follow_every_transition_and_roster_reload(build, mk, redis, clock, tmp_path):
    router = build()
    assert problems(router, redis) == []
    assert router.route(mk.call("CA1", "payment")).agent.id == "ann"
    assert problems(router, redis) == []
    router.answered("CA1", "ann")
    router.dial_result("CA1", "ann", "completed", 30)  # wrap-up 10 s
    assert problems(router, redis) == []
    assert router.route(mk.call("CA2", "human")).agent.id == "bob"
    router.dial_result("CA2", "bob", "no-answer")  # paused; the call goes to dan
    assert problems(router, redis) == []
    router.heartbeat("dan")
    router.set_status("cat", "offline")
    clock.advance(31)
    router.tick()
    assert problems(router, redis) == []
    # roster edit: bob leaves, eve joins at the top, the others move down one place
    agents = copy.deepcopy(mk.BASE_AGENTS)
    agents["agents"] = [{"id": "eve", "name": "Eve", "address": "client:eve", "skills": ["general"]}] + \
        [a for a in agents["agents"] if a["id"] != "bob"]
    mk.write(tmp_path / "agents.yaml", agents)
    clock.advance(3)
    router.tick()
    assert [a.id for a in router.rules.roster.agents] == ["eve", "ann", "cat", "dan"]
    assert problems(router, redis) == []
    members = redis.zrange("t:{route}:free:order", 0, -1)
    assert not any(m.endswith(":bob") for m in members)
    assert router.set_status("eve", "available")["ok"] and problems(router, redis) == []


def test_a_missing_eligible_set_is_written_again(build, mk, redis):
    router = build()
    assert router.route(mk.call("CA1", "human")).agent.id == "ann"
    for key in redis.keys("t:{route}:elig:*"):
        redis.delete(key)
    assert router.route(mk.call("CA2", "human")).agent.id == "bob"
    assert redis.keys("t:{route}:elig:*")


def test_worker_on_other_rules_during_a_reload_still_decides_right(build, mk, redis, tmp_path, clock):
    """Worker B puts in force rules that keep another index (last_available): worker A, still
    on its rules for a moment, falls back to the general path and still picks by its rules."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = build(rules=no_heartbeats(mk), folder=tmp_path / "a")
    for agent in ("dan", "cat"):
        a.set_status(agent, "offline")
    a.route(mk.call("CA1", "human"))
    a.route(mk.call("CA2", "human"))
    a.answered("CA1", "ann")
    a.answered("CA2", "bob")
    a.dial_result("CA1", "ann", "completed", 20)  # ann's call ended first: longest idle by last_call_ended
    clock.advance(10)
    a.dial_result("CA2", "bob", "completed", 20)
    a.set_status("ann", "offline")
    a.set_status("ann", "available")  # by last_available, bob would be first
    build(rules=no_heartbeats(mk, idle_since="last_available"), folder=tmp_path / "b", available=False)
    assert ",avail," in redis.hget("t:{route}:roster", "~indexes")
    assert a.route(mk.call("CA3", "human")).agent.id == "ann"
    assert problems(a, redis) == []


def test_big_roster_with_few_able_agents_finds_the_right_one(build, mk, redis, clock):
    """500 agents, only every 97th can take security calls: ROUTE reads past the others."""
    agents = {"agents": [{"id": f"x{i:03d}", "name": f"X{i}", "address": f"client:x{i:03d}",
                          "skills": {"general": 1, "payment": 1, **({"account_security": 1} if i % 97 == 96 else {}),
                                     **({"complaints": 1} if i == 0 else {})}} for i in range(500)]}
    router = build(rules=no_heartbeats(mk), agents=agents)
    picked = []
    for n in range(6):
        call = mk.call(f"CA{n}", "account_security")
        expected = router.simulate(call)["decision"]
        got = router.route(call)
        assert got.kind == expected["kind"]
        picked.append(got.agent.id if got.agent else None)
        assert expected["kind"] == "queued" or expected["agent"]["id"] == got.agent.id
    assert picked == ["x096", "x193", "x290", "x387", "x484", None]
    assert problems(router, redis) == []


def test_keys_of_the_indexes_share_the_route_slot():
    k = Keys("p")
    for key in (k.route_free("ended"), k.route_timers(), k.route_presence(), k.route_roster(),
                k.route_eligible("v1", "human", 0)):
        assert "{route}" in key


def test_a_flushed_redis_is_indexed_again_by_itself(build, mk, redis):
    router = build()
    assert router.route(mk.call("CA1", "human")).agent.id == "ann"
    redis.flushall()  # e.g. a failover to an empty replica: agents must log in again
    d = router.route(mk.call("CA2", "human"))
    assert d.kind == "queued" and d.position == 1
    assert problems(router, redis) == []
    assert mk.state(router, "ann")["reason"] == "not logged in yet"
    assert router.set_status("bob", "available")["ok"]
    assert router.poll("CA2").agent.id == "bob"
    assert problems(router, redis) == []


def test_an_argument_holding_the_packing_separator_still_arrives_whole(build, mk):
    router = build()
    assert router.set_status("ann", "offline", reason="lunch\x1fback at 2")["ok"]
    assert mk.state(router, "ann")["reason"] == "lunch\x1fback at 2"
    assert router.route(mk.call("CA1", "human")).agent.id == "bob"


def _day_indexes(redis) -> list[str]:
    return sorted(k.split(":free:", 1)[1] for k in redis.keys("t:{route}:free:*") if "|" in k)


def _hmgets(redis) -> int:
    return redis.info("commandstats").get("cmdstat_hmget", {}).get("calls", 0)


def _serve(router, mk, sid, category="human", talk=10):
    decision = router.route(mk.call(sid, category))
    assert decision.kind == "agent"
    router.answered(sid, decision.agent.id)
    router.dial_result(sid, decision.agent.id, "completed", talk)
    router.call_ended(sid)
    return decision.agent.id


SEOUL_MIDNIGHT = 1772463600.0  # Tuesday 2026-03-03 00:00 in Asia/Seoul (14 h after the clock's start)


def test_fewest_calls_reads_a_day_index_that_the_first_call_after_midnight_renews(build, mk, redis, clock):
    """Fewest calls today picks from a sorted day index (no read of every free agent); the
    first such call after local midnight makes the new day's index and deletes the old one."""
    router = build(rules=no_heartbeats(mk, **{"queues.general.strategy": "fewest_calls"}))
    order = []
    for n in range(3):  # ann, bob, dan serve general; nobody has a call yet: roster order
        order.append(_serve(router, mk, f"CA{n}"))
        clock.advance(5)
    assert order == ["ann", "bob", "dan"]
    assert _day_indexes(redis) == ["calls:2026-03-02|ended"]
    before = _hmgets(redis)
    decision = router.route(mk.call("CA3", "human"))  # one call each: ann's ended first (longest idle)
    assert _hmgets(redis) == before  # picked from the index: no agent's fields read one by one
    assert decision.agent.id == "ann"
    router.answered("CA3", "ann")
    router.dial_result("CA3", "ann", "completed", 10)
    router.call_ended("CA3")
    assert problems(router, redis) == []
    clock.now = SEOUL_MIDNIGHT + 60  # a new day: nobody has a call today; bob has been idle longest
    assert _serve(router, mk, "CA4") == "bob"
    assert _day_indexes(redis) == ["calls:2026-03-03|ended"]
    assert "calls:2026-03-02" not in redis.hget("t:{route}:roster", "~indexes")
    assert problems(router, redis) == []
    served = []
    for n in (5, 6, 7):
        clock.advance(5)
        served.append(_serve(router, mk, f"CA{n}"))
    assert served == ["dan", "ann", "bob"]  # none today, then the one whose call ended first
    assert problems(router, redis) == []


def test_a_worker_before_midnight_does_not_roll_the_day_index_back(build, mk, redis, clock, tmp_path):
    from ivr.routing.router import Router

    rules = no_heartbeats(mk, **{"queues.general.strategy": "least_talk_time"})
    late = build(rules=rules)
    _serve(late, mk, "CA1", talk=40)  # ann: 40 s of talk on Monday
    clock.now = SEOUL_MIDNIGHT - 1  # this worker: still Monday
    ahead = Router(redis, Keys("t"), tmp_path / "rules.yaml", tmp_path / "agents.yaml", clock=mk.Clock(SEOUL_MIDNIGHT + 1))
    assert _serve(ahead, mk, "CA2", talk=5) == "bob"  # Tuesday: nobody talked yet; bob never had a call
    assert _day_indexes(redis) == ["talk:2026-03-03|ended"]
    call = mk.call("CA3", "human")
    want = late.simulate(call)["decision"]["agent"]["id"]
    assert late.route(call).agent.id == want == "dan"  # Monday: bob and dan no talk, dan idle longer
    assert _day_indexes(redis) == ["talk:2026-03-03|ended"]  # kept: the later day's index
    assert problems(late, redis) == []


def test_a_roster_reload_drops_the_day_indexes_and_the_next_call_makes_them_again(build, mk, redis, clock, tmp_path):
    router = build(rules=no_heartbeats(mk, **{"queues.general.strategy": "fewest_calls"}))
    _serve(router, mk, "CA1")
    assert _day_indexes(redis) == ["calls:2026-03-02|ended"]
    agents = copy.deepcopy(mk.BASE_AGENTS)
    agents["agents"] = [a for a in agents["agents"] if a["id"] != "bob"]
    mk.write(tmp_path / "agents.yaml", agents)
    clock.advance(3)
    router.tick()
    assert [a.id for a in router.rules.roster.agents] == ["ann", "cat", "dan"]
    assert _day_indexes(redis) == []
    assert _serve(router, mk, "CA2") == "dan"  # ann has one call today, dan none
    assert _day_indexes(redis) == ["calls:2026-03-02|ended"]
    assert problems(router, redis) == []


def test_agents_log_in_and_send_heartbeats_right_after_redis_lost_everything(build, mk, redis):
    router = build(available=False)
    redis.flushall()  # Redis restarted without persistence: nothing has indexed the roster since
    assert router.set_status("ann", "available") == {"ok": True, "state": "available", "message": ""}
    assert router.heartbeat("ann")["ok"]
    assert problems(router, redis) == []
    redis.flushall()
    assert router.heartbeat("bob") == {"ok": True, "state": "offline", "message": ""}
    assert mk.state(router, "bob")["reason"] == "not logged in yet"
    assert router.set_status("zed", "available")["ok"] is False  # not on the roster: not made up
    assert redis.exists("t:{route}:agent:zed") == 0
