"""The Lua steps as text: each one carries every helper it calls, and Redis compiles them;
the CORE keys written into a step for a key prefix are exactly the names of ivr.keys.Keys."""

from __future__ import annotations

import re

import pytest
from redis.exceptions import ResponseError

from ivr.keys import Keys
from ivr.routing import prelude, scripts
from ivr.routing.ledger import Ledger


def test_every_helper_a_step_calls_is_defined_in_that_step():
    helpers = [name for name, _ in scripts.CHUNKS]
    assert {"set_agent", "index", "take", "free_again", "finish", "expire_all", "sticky_agent",
            "emit_agent", "emit_queue"} <= set(helpers)
    for step, body in scripts.ALL.items():
        defined = {a or b for a, b in re.findall(r"^\s*local (?:function (\w+)|(\w+) =)", body, re.M)}
        code = re.sub(r"--[^\n]*", "", body)
        used = {name for name in helpers if re.search(rf"\b{name}\b", code)}
        assert used <= defined, f"{step} calls {sorted(used - defined)} without defining it"
        assert "cjson.encode({" not in code or step == "mark_callback", f"{step} encodes a whole event table"


def test_steps_carry_only_the_helpers_they_use():
    snapshot, route, release = scripts.ALL["snapshot"], scripts.ALL["route"], scripts.ALL["release"]
    assert "local function set_agent" not in snapshot and "local function finish" not in route
    assert "local function take" in route and "local function expire_all" in route
    assert "local function free_again" in release and "local function free_again" not in route


def test_helpers_only_a_lazy_region_uses_are_made_there():
    """ROUTE makes the time-out helpers only when a time-out is due, RELEASE the general
    re-filing only for a talk that ended (or an agent off the roster): at column 0 only
    what the common path calls."""
    top = {step: {a or b for a, b in re.findall(r"^local (?:function (\w+)|(\w+) =)", body, re.M)}
           for step, body in scripts.ALL.items()}
    assert {"take", "unfile", "emit_agent", "due_ids"} <= top["route"]
    assert not {"expire_one", "set_agent", "index", "reserve", "lapse"} & top["route"]
    assert {"free_again", "file_free", "emit_agent"} <= top["release"]
    assert not {"finish", "set_agent", "index", "info_of"} & top["release"]
    assert {"set_agent", "index", "finish"} <= top["dial_result"]
    assert "--@" not in "".join(scripts.ALL.values())


def lua_unquoted(text: str) -> str:
    """What Lua reads a single-quoted string's inside as (the escapes prelude.lua_quoted writes)."""
    out = bytearray()
    for m in re.finditer(r"\\(\d{3}|.)|(.)", text):
        if m.group(2) is not None:
            out += m.group(2).encode()
        elif m.group(1).isdigit():
            out.append(int(m.group(1)))
        else:
            out += m.group(1).encode()
    return out.decode()


def core_keys_of(body: str) -> list[str]:
    """The CORE key names a step's opening writes into its KEYS table."""
    table = re.search(r"^local KEYS = \{declared\[1\], (.*), declared\[2\], declared\[3\]\}$", body, re.M).group(1)
    return [lua_unquoted(q) for q in re.findall(r"'((?:[^'\\]|\\.)*)'", table)]


@pytest.mark.parametrize("prefix", ["ivr", "t", "odd'pre\\fix", "한국"])
def test_the_keys_written_into_a_step_are_those_of_keys(prefix):
    k = Keys(prefix)
    want = [k.route_waiting(), k.route_held(), k.route_callbacks(), k.route_stats(), k.route_handled(),
            k.route_ended(), k.route_free("ended"), k.route_free("avail"), k.route_free("rr"),
            k.route_free("order"), k.route_timers(), k.route_presence(), k.route_roster()]
    base = k.route_calls()[: -len("calls")]
    bodies = scripts.for_base(base)
    assert set(bodies) == set(scripts.ALL)
    for step, body in bodies.items():
        assert prelude.MARK not in body, step
        assert core_keys_of(body) == want, step
        assert f"if KEYS[1] ~= '{prelude.lua_quoted(k.route_calls())}' then" in body, step
    assert "'" + prelude.lua_quoted(k.route_agent_prefix()) + "'" in bodies["route"]
    assert "'" + prelude.lua_quoted(k.route_sticky("")) + "'" in bodies["release"]


def test_a_base_without_the_route_tag_is_refused():
    with pytest.raises(ValueError):
        scripts.for_base("ivr:route:")


def test_redis_compiles_every_step(redis):
    for prefix in ("t", "odd'pre\\fix", "한국"):
        for step, body in scripts.for_base(Keys(prefix).route_calls()[:-5]).items():
            assert redis.script_load(body), step


@pytest.mark.parametrize("prefix,packed", [("t", False), ("t", True), ("odd'pre\\fix", False), ("한국", True)])
def test_the_steps_touch_exactly_the_keys_of_keys(redis, prefix, packed):
    """Every key the steps wrote is a name of ivr.keys.Keys for the ledger's prefix (whatever
    characters the prefix has), read back by those names; with the arguments sent one by one
    (redis-py with hiredis) or packed into one string (without)."""
    k = Keys(prefix)
    ledger = Ledger(redis, k, packed=packed)
    ledger.load_scripts()
    core = ledger.core()
    ledger.one("reindex", core + [k.route_agent("a1")], [100.0, k.ops_channel(), ",ended,order,", "30|3", "a1"])
    ledger.one("set_status", core + [k.route_agent("a1")], [101.0, k.ops_channel(), "a1", "available", ""])
    info = '{"sid": "CA1", "category": "c", "queue": "q", "priority": 0, "arrived": 102.0, "wrap": 0, ' \
           '"vip": false, "caller_hash": "", "hotline": "en", "language": "en", "sticky_s": 0, "sticky": ""}'
    redis.sadd(k.route_eligible("v", "c", 0), "~", "a1")
    got = ledger.one("route", core + [k.route_sticky("-"), k.route_eligible("v", "c", 0)],
                     [102.0, k.ops_channel(), "CA1", info, 102.0, 150.0, 0, "q", "ended", "ended", 0])
    assert got[:2] == ["agent", "a1"]
    assert redis.hget(k.route_calls(), "CA1") == info and redis.hget(k.route_held(), "CA1") == "a1"
    assert redis.zscore(k.route_timers(), "a1") == 150.0
    written = set(redis.keys("*"))
    assert written == {k.route_roster(), k.route_agent("a1"), k.route_presence(), k.route_eligible("v", "c", 0),
                       k.route_calls(), k.route_held(), k.route_timers()}  # the free indexes: empty now
    assert ledger.one("release", core, [103.0, k.ops_channel(), "CA1", k.route_agent_prefix(), "d", "hangup", 0]) \
        == ["released", 0]
    assert redis.zscore(k.route_free("order"), "000000:a1") == 0
    assert redis.zscore(k.route_free("ended"), "000000:a1") == 0
    assert redis.zscore(k.route_ended(), "CA1") == 103.0 and redis.zcard(k.route_timers()) == 0


def test_a_step_refuses_the_keys_of_another_prefix(redis):
    mine, other = Ledger(redis, Keys("t")), Ledger(redis, Keys("u"))
    mine.load_scripts()
    with pytest.raises(ResponseError, match="router step is for the keys"):
        redis.evalsha(mine._sha["release"], 1, other.core()[0], 1.0, "ch", "CA1", "u:{route}:agent:", "d", "hangup", 0)
