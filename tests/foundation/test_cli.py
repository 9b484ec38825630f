"""The `ivr` command's entry points, run as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SUBCOMMANDS = ["serve", "doctor", "models", "transcribe", "intents", "rules", "agents", "replay", "calls", "bench"]


def ivr(*args, env=None, cwd=None, timeout=120):
    full_env = dict(os.environ)
    for var in ("TWILIO_AUTH_TOKEN", "IVR_PUBLIC_URL", "REDIS_URL", "IVR_API_TOKEN", "IVR_CONFIG"):
        full_env.pop(var, None)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "ivr", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout)


def test_help_lists_every_subcommand():
    result = ivr("--help")
    assert result.returncode == 0
    for name in SUBCOMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_each_subcommand_has_useful_help(name):
    result = ivr(name, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: ivr" in result.stdout and len(result.stdout.splitlines()) >= 3


def test_broken_config_stops_with_one_line(config_file):
    text = config_file.read_text().replace("  workers: 1 ", "  workers: many ")
    config_file.write_text(text)
    result = ivr("--config", str(config_file), "doctor")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"ivr: {config_file}:") and "server.workers: expected an integer, found 'many'" in lines[0]
    # and on stdout, the problem with its fix
    assert "[FAIL] config:" in result.stdout and "server.workers" in result.stdout
    assert "fix: at " in result.stdout and "give server.workers expected an integer" in result.stdout


def test_doctor_on_an_unknown_key_says_to_remove_it(config_file):
    config_file.write_text(config_file.read_text() + "\nbogus_section: {}\n")
    result = ivr("--config", str(config_file), "doctor")
    assert result.returncode == 2
    assert "[FAIL] config:" in result.stdout and "fix: remove bogus_section" in result.stdout


def test_doctor_names_a_broken_rules_file_and_how_to_fix_it(config_file, redis_url):
    rules = config_file.parent / "routing" / "rules.yaml"
    rules.write_text(rules.read_text(encoding="utf-8") + "\nnot_a_rules_key: 1\n", encoding="utf-8")
    result = ivr("--config", str(config_file), "doctor", env={"REDIS_URL": redis_url})
    line = next(l for l in result.stdout.splitlines() if l.startswith("[FAIL] routing rules:"))
    assert "rules.yaml:" in line and "not_a_rules_key" in line
    assert "fix: fix the line named, then `ivr rules check`" in result.stdout
    assert result.returncode == 1


def test_serve_refuses_a_broken_config_before_starting(config_file):
    config_file.write_text(config_file.read_text() + "\nbogus_section: {}\n")
    result = ivr("--config", str(config_file), "serve", timeout=60)
    assert result.returncode == 2
    assert "bogus_section: unknown key" in result.stderr


def test_doctor_reports_each_problem_with_its_fix(config_file, redis_url):
    result = ivr("--config", str(config_file), "doctor", env={"REDIS_URL": redis_url})
    out = result.stdout
    assert "[FAIL] twilio signatures: TWILIO_AUTH_TOKEN is not set" in out
    assert "fix: export TWILIO_AUTH_TOKEN=" in out
    assert "[ok  ] redis: reachable" in out
    assert result.returncode == 1


def test_doctor_warns_when_signature_checking_is_off(config_file, redis_url):
    config_file.write_text(config_file.read_text().replace("validate_signatures: true", "validate_signatures: false"))
    result = ivr("--config", str(config_file), "doctor", env={"REDIS_URL": redis_url})
    assert "[WARN] twilio signatures: signature validation is OFF" in result.stdout


def test_doctor_warns_when_the_makefiles_development_secrets_are_in_use(config_file, redis_url):
    # `make run` exports public defaults so a laptop works at once; on a real number they
    # would let anyone sign webhooks and open the ops page.
    import re
    from pathlib import Path
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text()
    dev = dict(re.findall(r"^export (TWILIO_AUTH_TOKEN|IVR_API_TOKEN) \?= (\S+)$", makefile, re.M))
    assert set(dev) == {"TWILIO_AUTH_TOKEN", "IVR_API_TOKEN"}, "the Makefile's defaults moved"
    out = ivr("--config", str(config_file), "doctor", env={"REDIS_URL": redis_url, **dev}).stdout
    assert "[WARN] twilio signatures: TWILIO_AUTH_TOKEN is the Makefile's local development default" in out
    assert "[WARN] api token: IVR_API_TOKEN is the Makefile's local development default" in out
    own = {"TWILIO_AUTH_TOKEN": "a-real-token-3f9c", "IVR_API_TOKEN": "a-long-random-api-token-81b2"}
    out = ivr("--config", str(config_file), "doctor", env={"REDIS_URL": redis_url, **own}).stdout
    assert "[ok  ] twilio signatures: validated with the configured auth token" in out
    assert "api token" not in out
