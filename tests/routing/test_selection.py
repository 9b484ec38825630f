"""Pure selection: strategies, relaxation, overflow, ordering (no Redis)."""

from __future__ import annotations

import pytest

from ivr.routing import rules as rules_mod
from ivr.routing.selection import AgentView, WaitingCall, candidates, order, plan, relaxed

NOW = 1_000_000.0


def load(tmp_path, mk, strategy="longest_idle", **changes):
    rp = mk.write(tmp_path / "rules.yaml", mk.rules_with(**{"queues.general.strategy": strategy}, **changes))
    ap = mk.write(tmp_path / "agents.yaml", mk.BASE_AGENTS)
    return rules_mod.load(rp, ap)


def views(**fields):
    """ann, bob, dan free (general skill); per-agent overrides as dicts."""
    out = {}
    for agent in ("ann", "bob", "dan"):
        out[agent] = AgentView(agent, **{"state": "available", "hb": NOW, **fields.get(agent, {})})
    return out


def general_call(sid="CA1"):
    return WaitingCall(sid, "human", "general", 0, NOW)


@pytest.mark.parametrize("strategy, fields, best", [
    ("longest_idle", {"ann": {"ended_at": NOW - 10}, "bob": {"ended_at": NOW - 90}, "dan": {"ended_at": NOW - 50}}, "bob"),
    ("fewest_calls", {"ann": {"calls_today": 3}, "bob": {"calls_today": 5}, "dan": {"calls_today": 1}}, "dan"),
    ("least_talk_time", {"ann": {"talk_today": 30.0}, "bob": {"talk_today": 10.0}, "dan": {"talk_today": 90.0}}, "bob"),
    ("round_robin", {"ann": {"offered_at": NOW - 1}, "bob": {"offered_at": NOW - 3}, "dan": {"offered_at": NOW - 2}}, "bob"),
    ("fixed_order", {"ann": {"calls_today": 9}, "bob": {"calls_today": 0}, "dan": {"ended_at": 1.0}}, "ann"),
])
def test_each_strategy_picks_its_agent(tmp_path, mk, strategy, fields, best):
    rules = load(tmp_path, mk, strategy)
    ranked = candidates(rules, general_call(), views(**fields), {"ann", "bob", "dan"}, NOW)
    assert ranked[0] == best and sorted(ranked) == ["ann", "bob", "dan"]


def test_ties_fall_back_to_roster_order(tmp_path, mk):
    rules = load(tmp_path, mk)
    assert candidates(rules, general_call(), views(), {"dan", "bob", "ann"}, NOW) == ["ann", "bob", "dan"]


def test_relax_steps_lower_minimums_but_never_below_one(tmp_path, mk):
    rules = load(tmp_path, mk, **{"queues.billing.relax": [{"after_s": 30, "lower_by": 1}, {"after_s": 90, "lower_by": 5}]})
    assert relaxed(rules, "payment", "billing", 0) == {"payment": 2}
    assert relaxed(rules, "payment", "billing", 30) == {"payment": 1}
    assert relaxed(rules, "payment", "billing", 500) == {"payment": 1}


def test_plan_serves_priority_then_arrival_and_uses_each_agent_once(tmp_path, mk):
    rules = load(tmp_path, mk)
    calls = [WaitingCall("old", "human", "general", 0, NOW - 50), WaitingCall("new", "human", "general", 0, NOW - 5),
             WaitingCall("vip", "human", "general", 10, NOW - 1), WaitingCall("late", "human", "general", 0, NOW)]
    assert [c.sid for c in order(calls)] == ["vip", "old", "new", "late"]
    pairs = plan(rules, views(), calls, NOW)
    assert [sid for sid, _ in pairs] == ["vip", "old", "new"]
    assert len({agents[0] for _, agents in pairs}) == 3


def test_overflow_widens_the_agents_who_may_answer(tmp_path, mk):
    rules = load(tmp_path, mk, **{"queues.billing.relax": []})
    call = WaitingCall("CA1", "payment", "billing", 10, NOW - 10)
    free = {"ann", "bob", "dan"}
    assert candidates(rules, call, views(), free, NOW) == ["ann"]
    assert candidates(rules, call, views(), free, NOW + 60) == ["ann", "bob", "dan"]


def test_agents_not_present_or_not_available_are_not_planned(tmp_path, mk):
    rules = load(tmp_path, mk)
    v = views(ann={"hb": NOW - 61}, bob={"state": "wrap_up"})
    assert plan(rules, v, [general_call()], NOW) == [("CA1", ["dan"])]
