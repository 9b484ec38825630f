"""`ivr doctor`: check every part the hotline needs and say how to fix each problem."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Literal

from ivr.config import Config

Level = Literal["ok", "warn", "fail"]

# Each package that can be misconfigured offers `doctor_checks(config) -> list[Check]`
# in its `cli` module.
CHECK_MODULES = ("ivr.asr.cli", "ivr.intents.cli", "ivr.routing.cli", "ivr.telephony.cli")
# The Makefile's secrets for `make run` on a laptop start with this: public, so never for a real number.
DEV_SECRET_PREFIX = "local-dev-"


@dataclass(frozen=True)
class Check:
    name: str
    level: Level
    detail: str
    fix: str = ""


def config_problem_checks(problems) -> list[Check]:
    """A config that does not parse: one failed check per problem, each with its fix."""
    checks = []
    for p in problems:
        where = f"{p.file}:{p.line}" if getattr(p, "line", None) else getattr(p, "file", "config")
        key, reason = getattr(p, "key", ""), getattr(p, "reason", str(p))
        if "unknown key" in reason:
            fix = f"remove {key or 'that key'} at {where} or correct its spelling (README, 'Configuration reference')"
        elif reason.startswith("expected"):
            fix = f"at {where}, give {key or 'the value'} {reason.split(', found ')[0]}"
        elif key.startswith("environment ") or str(where).startswith("environment "):
            fix = f"correct the environment variable ({where}); its value is never printed"
        else:
            fix = f"correct {where}: {reason}"
        checks.append(Check("config", "fail", str(p), fix + "; the server refuses to start until it parses"))
    return checks


def config_checks(config: Config) -> list[Check]:
    checks = [Check("config", "ok", "parsed")]
    if not config.twilio.validate_signatures:
        checks.append(Check("twilio signatures", "warn", "signature validation is OFF: anyone can forge webhooks",
                            "set twilio.validate_signatures: true (only turn it off on a laptop)"))
    elif not config.twilio.auth_token.get_secret_value():
        checks.append(Check("twilio signatures", "fail", "TWILIO_AUTH_TOKEN is not set: every webhook will be refused",
                            "export TWILIO_AUTH_TOKEN=<your Twilio auth token>"))
    elif config.twilio.auth_token.get_secret_value().startswith(DEV_SECRET_PREFIX):
        checks.append(Check("twilio signatures", "warn", "TWILIO_AUTH_TOKEN is the Makefile's local development "
                            "default: anyone who reads it can sign webhooks",
                            "export TWILIO_AUTH_TOKEN=<your Twilio auth token> before `make run` on a real number"))
    else:
        checks.append(Check("twilio signatures", "ok", "validated with the configured auth token"))
    if not config.server.public_url.startswith("https://"):
        checks.append(Check("public url", "warn", f"{config.server.public_url} is not https: Twilio needs https/wss in production",
                            "export IVR_PUBLIC_URL=https://<the host Twilio reaches>"))
    if not config.api.token.get_secret_value():
        checks.append(Check("api token", "warn", "IVR_API_TOKEN is not set: the agent API and the ops page are closed",
                            "export IVR_API_TOKEN=<a long random string>"))
    elif config.api.token.get_secret_value().startswith(DEV_SECRET_PREFIX):
        checks.append(Check("api token", "warn", "IVR_API_TOKEN is the Makefile's local development default: "
                            "anyone who reads it can use the agent API and the ops page",
                            "export IVR_API_TOKEN=<a long random string> before `make run` beyond a laptop"))
    return checks


def redis_check(config: Config) -> list[Check]:
    from ivr import store

    try:
        s = store.open_store(config)
    except Exception as exc:
        return [Check("redis", "fail", str(exc), "start Redis or unset REDIS_URL to use the embedded one")]
    try:
        if s.ping():
            where = store.redact(config.redis.url) if config.redis.url else f"embedded, data in {config.redis.embedded_dir}"
            return [Check("redis", "ok", f"reachable ({where})")]
        return [Check("redis", "fail", "no answer to PING", "check REDIS_URL, the server and its password")]
    finally:
        s.close()


def run_checks(config: Config) -> list[Check]:
    checks = config_checks(config) + redis_check(config)
    for name in CHECK_MODULES:
        module = importlib.import_module(name)
        fn = getattr(module, "doctor_checks", None)
        if fn is None:
            continue
        try:
            checks.extend(fn(config))
        except Exception as exc:  # a broken check must not hide the others
            checks.append(Check(name.split(".")[1], "fail", f"check crashed: {exc!r}"))
    return checks


def render(checks: list[Check]) -> str:
    mark = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}
    lines = []
    for c in checks:
        lines.append(f"[{mark[c.level]}] {c.name}: {c.detail}")
        if c.fix and c.level != "ok":
            lines.append(f"       fix: {c.fix}")
    return "\n".join(lines)
