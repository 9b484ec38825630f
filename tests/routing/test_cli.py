"""`ivr rules check|simulate` and `ivr agents list|set-status` from a shell."""

from __future__ import annotations

import json

import pytest
import yaml

from ivr.cli import main


@pytest.fixture
def ivr(config_file, redis, redis_url, clean_env, monkeypatch, capsys):
    monkeypatch.setenv("REDIS_URL", redis_url)

    def run(*argv):
        code = main(["--config", str(config_file), *argv])
        out = capsys.readouterr()
        return code, out.out, out.err
    return run


def test_rules_check_accepts_the_shipped_files(ivr):
    code, out, _ = ivr("rules", "check")
    assert code == 0 and "8 categories" in out


def test_rules_check_refuses_an_edited_copy_with_file_and_line(ivr, tmp_path, config_file):
    edited = tmp_path / "edited-agents.yaml"
    data = yaml.safe_load((config_file.parent / "routing/agents.yaml").read_text())
    data["agents"][0]["skills"] = {"acount_security": 3}
    edited.write_text(yaml.safe_dump(data))
    code, _, err = ivr("rules", "check", str(edited))
    assert code == 1 and f"{edited}:" in err and "unknown skill 'acount_security'" in err
    assert "fix them before copying it over" in err and "agents.yaml" in err.splitlines()[-1]


def test_rules_check_notes_a_reservation_shorter_than_the_ring(ivr, tmp_path, config_file):
    edited = tmp_path / "rules.yaml"
    data = yaml.safe_load((config_file.parent / "routing/rules.yaml").read_text())
    data["agents"]["reservation_timeout_s"] = 10
    edited.write_text(yaml.safe_dump(data))
    code, out, _ = ivr("rules", "check", str(edited))
    assert code == 0 and "note: agents.reservation_timeout_s is 10 s" in out and "at least 25 s" in out
    code, out, _ = ivr("rules", "check")
    assert code == 0 and "note:" not in out


def test_agents_set_status_and_list(ivr):
    code, out, _ = ivr("agents", "set-status", "minji", "available")
    assert code == 0 and "minji: available" in out and "without a heartbeat" in out
    code, out, _ = ivr("agents", "set-status", "minji", "heartbeat")
    assert code == 0 and "minji: available" in out
    code, out, _ = ivr("agents", "list", "--json")
    agents = {a["id"]: a for a in json.loads(out)}
    assert code == 0 and agents["minji"]["state"] == "available" and agents["jihoon"]["state"] == "offline"
    code, _, err = ivr("agents", "set-status", "nobody", "available")
    assert code == 1 and "no agent 'nobody'" in err


def test_simulate_shows_queue_candidates_and_decision_without_changing_anything(ivr):
    ivr("agents", "set-status", "minji", "available")
    code, out, _ = ivr("rules", "simulate", "my card was charged twice", "--category", "payment",
                       "--at", "2026-03-02T10:00", "--json")
    result = json.loads(out)
    assert code == 0 and result["queue"] == "billing"
    assert [c["id"] for c in result["candidates"]][0] == "minji"
    assert result["decision"]["kind"] == "agent" and result["decision"]["agent"]["id"] == "minji"
    _, out, _ = ivr("agents", "list", "--json")
    assert next(a for a in json.loads(out) if a["id"] == "minji")["state"] == "available"


def test_simulate_refuses_an_unknown_category_instead_of_routing_it_as_the_default(ivr):
    code, out, err = ivr("rules", "simulate", "anything", "--category", "paymnet")
    assert code == 2 and out == "" and "no category 'paymnet'" in err and "payment" in err


def test_simulate_classifies_the_text(ivr):
    code, out, _ = ivr("rules", "simulate", "I was charged twice for my subscription", "--lang", "en")
    assert code == 0
    assert "category:   payment" in out and "queue:      billing" in out and "decision:   queued" in out


VIP = "+821099990000"
T0 = 1772413200.0  # Monday 2026-03-02 10:00 in Seoul


@pytest.fixture
def clock(mk):
    return mk.Clock(T0)


@pytest.fixture
def live(config_file, redis, redis_url, clock):
    """The shipped rules with a VIP number and no heartbeats, and a router on them (the clock by hand)."""
    from ivr.config import load
    from ivr.keys import Keys
    from ivr.routing.router import Router

    rules = config_file.parent / "routing/rules.yaml"
    text = rules.read_text(encoding="utf-8")
    text = text.replace("numbers: []", f'numbers: ["{VIP}"]').replace("heartbeat_timeout_s: 60", "heartbeat_timeout_s: 0")
    rules.write_text(text, encoding="utf-8")
    cfg = load(config_file, env={"REDIS_URL": redis_url})
    return Router.from_config(cfg, redis, Keys(cfg.redis.key_prefix), clock=clock)


def simulate(ivr, at, *more):
    code, out, err = ivr("rules", "simulate", "my card was charged twice", "--category", "payment",
                         "--at", repr(at), "--json", *more)
    assert code == 0, err
    return json.loads(out)


def test_simulate_from_a_vip_number_puts_the_caller_ahead_like_a_real_route(ivr, live, clock):
    from ivr.routing.router import CallInfo

    live.route(CallInfo("CAearly", "payment", "+821011112222", "ko", "ko", T0))  # nobody on shift: waits
    at = T0 + 30
    plain = simulate(ivr, at)
    vip = simulate(ivr, at, "--from", VIP)
    assert (plain["vip"], plain["priority"], plain["decision"]["position"]) == (False, 10, 2)
    assert (vip["vip"], vip["priority"], vip["decision"]["position"]) == (True, 20, 1)
    _, text, _ = ivr("rules", "simulate", "charged twice", "--category", "payment", "--at", repr(at), "--from", VIP)
    assert "(priority 20, VIP)" in text and "decision:   queued in billing at position 1" in text
    clock.now = at  # and a real call from that number, at that moment, is placed where simulate said
    real = live.route(CallInfo("CAvip", "payment", VIP, "ko", "ko", at))
    assert (real.kind, real.queue, real.position) == ("queued", vip["decision"]["queue"], vip["decision"]["position"])


def test_simulate_from_a_caller_who_talked_to_an_agent_recently_picks_that_agent(ivr, live, clock):
    from ivr.routing.router import CallInfo

    caller = "+821033334444"
    for agent in ("minji", "jihoon"):
        assert live.set_status(agent, "available")["ok"]
    assert live.route(CallInfo("CA1", "payment", caller, "ko", "ko", T0)).agent.id == "minji"
    assert live.route(CallInfo("CA2", "payment", "+821055556666", "ko", "ko", T0)).agent.id == "jihoon"
    live.answered("CA1", "minji")
    live.answered("CA2", "jihoon")
    clock.now = T0 + 60
    live.call_ended("CA2")  # jihoon is free first: the longest idle from now on
    clock.now = T0 + 120
    live.call_ended("CA1")
    at = T0 + 120 + 3600  # an hour later: wrap-ups are over (route() would expire them first)
    assert simulate(ivr, at)["decision"]["agent"]["id"] == "jihoon"
    sticky = simulate(ivr, at, "--from", caller)
    assert sticky["sticky"] == "minji" and sticky["decision"]["agent"]["id"] == "minji"
    assert [c["id"] for c in sticky["candidates"]][:2] == ["minji", "jihoon"]
    _, text, _ = ivr("rules", "simulate", "charged twice", "--category", "payment", "--at", repr(at), "--from", caller)
    assert "sticky:     minji" in text and "decision:   agent minji" in text
    late = T0 + 120 + 24 * 3600 + 1  # past sticky.within_hours (24) by the clock given with --at
    assert simulate(ivr, late, "--from", caller)["sticky"] is None
    assert simulate(ivr, late, "--from", caller)["decision"]["agent"]["id"] == "jihoon"
    # what a real call from that number gets, an hour later
    clock.now = at
    assert live.route(CallInfo("CA3", "payment", caller, "ko", "ko", at)).agent.id == "minji"


def test_simulate_refuses_a_from_number_that_is_not_e164(ivr):
    code, _, err = ivr("rules", "simulate", "hello", "--category", "payment", "--from", "010-3333-4444")
    assert code == 2 and "--from: expected the caller's E.164 number" in err
