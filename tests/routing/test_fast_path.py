"""The route and release steps' cheaper ways keep what they write: the call's info text,
the events the ops page reads, the agents' hashes and indexes."""

from __future__ import annotations

import json
import os

from ivr.routing.ledger import index_problems


def test_a_routed_call_stores_the_info_json_dumps_writes(build, mk, redis, clock):
    router = build()
    d = router.route(mk.call("CA1", "payment", arrived=clock.now - 3))
    assert d.kind == "agent"
    stored = redis.hget("t:{route}:calls", "CA1")
    info = json.loads(stored)
    assert stored == json.dumps(info) and list(info)[-1] == "sticky" and info["sticky"] == ""
    assert info["arrived"] == clock.now - 3 and info["queue"] == "billing"
    # a sticky agent found by the step is written into the same text
    router.answered("CA1", d.agent.id)
    router.dial_result("CA1", d.agent.id, "completed", 30)
    clock.advance(60)
    again = router.route(mk.call("CA2", "payment", caller=mk.call("CA1").caller))
    stored = redis.hget("t:{route}:calls", "CA2")
    assert json.loads(stored)["sticky"] == d.agent.id == again.agent.id
    assert stored == json.dumps(json.loads(stored))


def events_of(pubsub) -> list[dict]:
    out, quiet = [], 0
    while quiet < 3:
        m = pubsub.get_message(timeout=0.2)
        quiet = quiet + 1 if m is None else 0
        if m is not None:
            out.append(json.loads(m["data"]))
    return out


def test_route_and_release_publish_the_same_events_as_json(build, mk, redis, clock):
    router = build(rules=mk.rules_with(**{"agents.heartbeat_timeout_s": 0}))
    for a in ("bob", "cat", "dan"):
        router.set_status(a, "offline")
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("t:ops:updates")
    assert router.route(mk.call('CA"1', "payment")).agent.id == "ann"
    assert router.route(mk.call("CA2", "payment")).kind == "queued"
    router.call_ended("CA2")
    router.call_ended('CA"1')
    events = events_of(pubsub)
    pubsub.close()
    at = clock.now
    assert events == [
        {"type": "agent", "id": "ann", "state": "reserved", "call": 'CA"1', "reason": "", "at": at},
        {"type": "queue", "event": "enqueued", "sid": "CA2", "queue": "billing", "at": at},
        {"type": "queue", "event": "abandoned", "sid": "CA2", "queue": "billing", "at": at},
        {"type": "agent", "id": "ann", "state": "available", "call": "", "reason": "", "at": at},
    ]


def test_released_reservations_leave_hashes_and_indexes_as_the_general_way_does(build, mk, redis, clock):
    """free_again (a reserved agent freed at the caller's hang-up) files the agent as
    set_agent and index would: every strategy's index, scores by the agent's fields."""
    for strategy, idle in [("longest_idle", "last_call_ended"), ("longest_idle", "last_available"),
                           ("round_robin", "last_call_ended"), ("fixed_order", "last_call_ended")]:
        redis.flushall()
        rules = mk.rules_with(idle_since=idle, **{"queues.general.strategy": strategy, "agents.heartbeat_timeout_s": 0})
        router = build(rules=rules)
        ids = [a.id for a in router.rules.roster.agents]
        for n in range(8):
            sid = f"CA{strategy}{idle}{n}"
            clock.advance(7)
            d = router.route(mk.call(sid, "human"))
            assert d.kind == "agent"
            if n % 3 == 1:  # a talk: its end files the agent the general way
                router.answered(sid, d.agent.id)
            clock.advance(3)
            router.call_ended(sid)
            agent = redis.hgetall(f"t:{{route}}:agent:{d.agent.id}")
            assert agent["state"] == "available" and agent["call"] == "" and float(agent["since"]) == clock.now
            assert float(agent["avail_at"] if n % 3 != 1 else agent["ended_at"]) == clock.now
            assert index_problems(redis, router.keys, ids) == [], (strategy, n)


def test_a_route_runs_the_time_outs_due_in_its_own_step(build, mk, redis, clock):
    """ROUTE's lazy region: the wrap-up that ran out ends in the route step itself."""
    router = build()
    for a in ("bob", "cat", "dan"):
        router.set_status(a, "offline")
    assert router.route(mk.call("CA1", "payment")).agent.id == "ann"
    router.answered("CA1", "ann")
    router.dial_result("CA1", "ann", "completed", 20)  # billing: 10 s of wrap-up
    assert redis.hget("t:{route}:agent:ann", "state") == "wrap_up"
    clock.advance(11)
    assert router.route(mk.call("CA2", "payment")).agent.id == "ann"
    assert redis.hget("t:{route}:agent:ann", "call") == "CA2"
    assert index_problems(redis, router.keys, ["ann", "bob", "cat", "dan"]) == []


def test_releasing_an_agent_the_new_roster_dropped_files_them_the_general_way(build, mk, redis, clock, tmp_path):
    """RELEASE's lazy region: an agent reserved under the old roster is off the new one."""
    router = build(interval=0)
    assert router.route(mk.call("CA1", "human")).agent.id == "ann"
    smaller = {"agents": [a for a in mk.BASE_AGENTS["agents"] if a["id"] != "ann"]}
    mk.write(tmp_path / "agents.yaml", smaller)
    os.utime(tmp_path / "agents.yaml", (clock.now + 5, clock.now + 5))
    assert [a.id for a in router.rules.roster.agents] == ["bob", "cat", "dan"]  # adopted
    # the adoption took ann's offer back (REINDEX); a worker still on the old roster for a
    # moment may reserve her again (she logs in there, a sticky caller of hers calls)
    assert redis.hget("t:{route}:agent:ann", "state") == "offline" and redis.zscore("t:{route}:waiting", "CA1")
    redis.zrem("t:{route}:waiting", "CA1")
    redis.hset("t:{route}:held", "CA1", "ann")
    redis.hset("t:{route}:agent:ann", mapping={"state": "reserved", "call": "CA1", "until": clock.now + 45})
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("t:ops:updates")
    router.call_ended("CA1")
    assert redis.hget("t:{route}:agent:ann", "state") == "available"
    assert index_problems(redis, router.keys, ["bob", "cat", "dan"]) == []
    assert {"type": "agent", "id": "ann", "state": "available", "call": "", "reason": ""}.items() \
        <= events_of(pubsub)[0].items()
    pubsub.close()
