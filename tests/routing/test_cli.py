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


def test_agents_set_status_and_list(ivr):
    assert ivr("agents", "set-status", "minji", "available")[0] == 0
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


def test_simulate_classifies_the_text(ivr):
    code, out, _ = ivr("rules", "simulate", "I was charged twice for my subscription", "--lang", "en")
    assert code == 0
    assert "category:   payment" in out and "queue:      billing" in out and "decision:   queued" in out
