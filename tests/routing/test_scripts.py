"""The Lua steps as text: each one carries every helper it calls, and Redis compiles them."""

from __future__ import annotations

import re

from ivr.routing import scripts


def test_every_helper_a_step_calls_is_defined_in_that_step():
    helpers = [name for name, _ in scripts._CHUNKS]
    assert {"set_agent", "index", "take", "finish", "expire_due", "sticky_agent"} <= set(helpers)
    for step, body in scripts.ALL.items():
        defined = {a or b for a, b in re.findall(r"^local (?:function (\w+)|(\w+) =)", body, re.M)}
        code = re.sub(r"--[^\n]*", "", body)
        used = {name for name in helpers if re.search(rf"\b{name}\b", code)}
        assert used <= defined, f"{step} calls {sorted(used - defined)} without defining it"


def test_steps_carry_only_the_helpers_they_use():
    snapshot, route = scripts.ALL["snapshot"], scripts.ALL["route"]
    assert "local function set_agent" not in snapshot and "local function finish" not in route
    assert "local function take" in route and "local function expire_due" in route


def test_redis_compiles_every_step(redis):
    for step, body in scripts.ALL.items():
        assert redis.script_load(body), step
