"""Routing fixtures: rules and roster written to a scratch folder, a clock tests move by hand."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from ivr.keys import Keys

# Monday 2026-03-02 10:00 in Asia/Seoul (01:00 UTC).
MONDAY_10AM_SEOUL = 1772413200.0

BASE_RULES = {
    "timezone": "Asia/Seoul",
    "idle_since": "last_call_ended",
    "default_category": "out_of_scope",
    "skills": ["payment", "account_security", "complaints", "general"],
    "agents": {"heartbeat_timeout_s": 60, "reservation_timeout_s": 45, "missed_pause_s": 30, "max_missed": 3},
    "vip": {"priority_boost": 10, "numbers": ["+821099990000"]},
    "sticky": {"within_hours": 24},
    "hours": {
        "business": {"timezone": "Asia/Seoul", "weekly": {"mon-fri": ["09:00-18:00"]},
                     "holidays": ["2026-03-03"],
                     "closed_message": {"ko": "지금은 상담 시간이 아닙니다.", "en": "We are closed."},
                     "closed_number": None},
    },
    "categories": {
        "payment": {"queue": "billing", "priority": 10},
        "account_security": {"queue": "security", "priority": 20},
        "complaint": {"queue": "complaints", "priority": 30},
        "human": {"queue": "general"},
        "out_of_scope": {"queue": "general"},
    },
    "queues": {
        "billing": {"skills": {"payment": 2}, "relax": [{"after_s": 30, "lower_by": 1}], "wrap_up_s": 10,
                    "overflow": {"after_s": 60, "to": "general"}, "max_wait_s": 300,
                    "after_max_wait": {"action": "callback", "message": {"en": "We will call you back."}}},
        "security": {"skills": {"account_security": 1}, "wrap_up_s": 0, "max_wait_s": 120,
                     "after_max_wait": {"action": "fallback", "number": "+15005550123", "message": "Transferring."}},
        "complaints": {"skills": {"complaints": 1}, "strategy": "fixed_order", "wrap_up_s": 0, "hours": "business"},
        "general": {"skills": {"general": 1}, "wrap_up_s": 0},
    },
}

BASE_AGENTS = {"agents": [
    {"id": "ann", "name": "Ann", "address": "client:ann", "skills": {"payment": 2, "general": 1}},
    {"id": "bob", "name": "Bob", "address": "sip:bob@pbx.example.com", "skills": {"payment": 1, "general": 1}},
    {"id": "cat", "name": "Cat", "address": "+821055550000", "skills": {"account_security": 1, "complaints": 1}},
    {"id": "dan", "name": "Dan", "address": "client:dan", "skills": {"general": 1, "complaints": 1}},
]}


class Clock:
    """A clock tests advance by hand."""

    def __init__(self, now: float = MONDAY_10AM_SEOUL):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def rules_with(**changes) -> dict:
    """BASE_RULES with dotted-path changes: rules_with(**{"queues.billing.wrap_up_s": 0})."""
    data = copy.deepcopy(BASE_RULES)
    for path, value in changes.items():
        node = data
        parts = path.split(".")
        for p in parts[:-1]:
            node = node[p]
        node[parts[-1]] = value
    return data


def write(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def build(redis, tmp_path, clock):
    """build(rules=None, agents=None, available=True) -> Router on the real Redis."""
    from ivr.routing.router import Router

    def make(rules=None, agents=None, available=True, keys=None, folder=None, interval=2.0):
        folder = folder or tmp_path
        rp = write(folder / "rules.yaml", rules if rules is not None else BASE_RULES)
        ap = write(folder / "agents.yaml", agents if agents is not None else BASE_AGENTS)
        router = Router(redis, keys or Keys("t"), rp, ap, clock=clock, reload_interval_s=interval)
        if available:
            for a in (agents or BASE_AGENTS)["agents"]:
                assert router.set_status(a["id"], "available")["ok"]
        return router

    return make


def call(sid, category="payment", caller=None, arrived=None, language="en"):
    """A CallInfo; each sid gets its own caller number unless one is given."""
    import zlib

    from ivr.routing.router import CallInfo

    caller = caller or f"+8210{zlib.crc32(sid.encode()) % 10**8:08d}"

    return CallInfo(sid=sid, category=category, caller=caller, hotline="en", language=language,
                    arrived_at=arrived or 0.0)


def state(router, agent_id):
    return next(a for a in router.agents_snapshot() if a["id"] == agent_id)


@pytest.fixture
def mk():
    """Helpers without imports (tests run with --import-mode=importlib)."""
    from types import SimpleNamespace

    return SimpleNamespace(call=call, state=state, rules_with=rules_with, write=write, Clock=Clock,
                           BASE_RULES=BASE_RULES, BASE_AGENTS=BASE_AGENTS, MONDAY_10AM_SEOUL=MONDAY_10AM_SEOUL)
