"""The router's Redis adapter: read a snapshot in one round trip, run Lua steps in one.

Works with ``redis.Redis`` and ``redis.cluster.RedisCluster`` alike: every key has the
``{route}`` tag, so a pipeline of them goes to one node.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace

from redis.exceptions import NoScriptError, ResponseError
from redis.utils import HIREDIS_AVAILABLE

from ivr.keys import Keys
from ivr.routing import scripts
from ivr.routing.selection import AgentView, WaitingCall, day_score


def text(value) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _decode(obj):
    if isinstance(obj, bytes):
        return obj.decode()
    if isinstance(obj, dict):
        return {_decode(k): _decode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_decode(v) for v in obj]
    return obj


SEP = "\x1f"  # joins a step's arguments into one (the scripts split it; see prelude.OPENING)


def _text(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)  # as redis-py sends a float: exact
    return str(int(value))


def pack(args: list) -> list[str]:
    """A step's arguments as one string, for redis-py without hiredis: each argument it
    encodes in Python costs the client more than the split costs the script. An argument
    holding the separator itself goes unpacked (rare)."""
    parts = [a if a.__class__ is str else _text(a) for a in args]
    joined = SEP.join(parts)
    if len(parts) < 2 or joined.count(SEP) != len(parts) - 1:
        return parts
    return [joined]


def texts(args: list) -> list[str]:
    """A step's arguments as strings, for redis-py with hiredis (which encodes them in C, and
    a Lua step gets each argument as a string of its own without splitting one)."""
    return [a if a.__class__ is str else _text(a) for a in args]


def _list(value) -> list:
    # cjson encodes an empty Lua table as {}
    return value if isinstance(value, list) else []


def _pairs(value) -> list[tuple]:
    flat = _list(value)
    return list(zip(flat[0::2], flat[1::2]))


@dataclass
class Snapshot:
    views: dict[str, AgentView]
    calls: dict[str, dict]          # sid -> info (shared between snapshots: read, never change)
    waiting: dict[str, float]       # sid -> original arrival (from its info; 0 if unreadable)
    held: dict[str, str]            # sid -> agent
    callbacks: set[str]
    handled: list[str]
    sticky: str = ""                # the caller's sticky entry as stored ('<agent id>|<ended at>')
    extra: dict = field(default_factory=dict)
    indexed: bool = True  # False: Redis has no roster (never indexed, or lost): reindex
    parsed: dict[str, WaitingCall] = field(default_factory=dict)  # sid -> the call as a WaitingCall

    def waiting_calls(self) -> list[WaitingCall]:
        out = []
        for sid in self.waiting:
            if sid in self.held:
                continue
            call = self.parsed.get(sid)
            if call is None:
                info = self.calls.get(sid)
                if info is None:
                    continue
                call = call_from_info(info)
            out.append(replace(call, callback=True) if sid in self.callbacks else call)
        return out


_UNPARSED = object()  # an info remembered, not yet made a WaitingCall


def _parse_info(text_: str) -> tuple[dict, WaitingCall | None] | None:
    try:
        info = json.loads(text_)
    except ValueError:
        return None
    if not isinstance(info, dict):
        return None
    return _parsed(info)


def _parsed(info: dict) -> tuple[dict, WaitingCall | None]:
    try:
        return info, call_from_info(info)
    except (KeyError, TypeError, ValueError):
        return info, None


def call_from_info(info: dict, callback: bool = False) -> WaitingCall:
    return WaitingCall(info["sid"], info["category"], info["queue"], int(info["priority"]), float(info["arrived"]),
                       callback=callback, sticky=info.get("sticky") or "", extra=info)


class Ledger:
    def __init__(self, redis, keys: Keys, packed: bool | None = None):
        """``packed``: send a step's arguments as one string (default: unless redis-py has hiredis)."""
        self.redis = redis
        self.keys = keys
        self._args = pack if (not HIREDIS_AVAILABLE if packed is None else packed) else texts
        # sid -> (info, WaitingCall) of the calls the router knows: a call's info is written
        # once (only the Lua steps' own marks change later), so it is read and parsed once
        self._infos: dict[str, tuple[dict, WaitingCall | None]] = {}
        self._views: dict[tuple, AgentView] = {}
        from redis.cluster import RedisCluster

        self.cluster = isinstance(redis, RedisCluster)
        k = keys
        self._core = (k.route_calls(), k.route_waiting(), k.route_held(), k.route_callbacks(), k.route_stats(),
                      k.route_handled(), k.route_ended(), k.route_free("ended"), k.route_free("avail"),
                      k.route_free("rr"), k.route_free("order"), k.route_timers(), k.route_presence(),
                      k.route_roster())
        base = self._core[0][: -len(scripts.CORE_SUFFIXES[0])]
        if self._core != tuple(base + suffix for suffix in scripts.CORE_SUFFIXES) \
                or k.route_agent_prefix() != base + "agent:":
            raise RuntimeError("ivr.keys routing names and scripts.CORE_SUFFIXES disagree")
        # the steps for this key base (its CORE keys written into them)
        self._bodies = scripts.for_base(base)
        self._sha = {name: hashlib.sha1(body.encode()).hexdigest() for name, body in self._bodies.items()}
        # replies come as str when the client decodes them (the store's always does)
        encoder = getattr(redis, "get_encoder", None)
        self._decoded = bool(encoder and getattr(encoder(), "decode_responses", False))

    def core(self) -> list[str]:
        """The CORE keys a step sends: only KEYS[1]; KEYS[2..14] are written into the scripts."""
        return [self._core[0]]

    def core_keys(self) -> tuple[str, ...]:
        """All of KEYS[1..14] (see :mod:`ivr.routing.scripts`)."""
        return self._core

    def load_scripts(self) -> None:
        for body in self._bodies.values():
            self.redis.script_load(body)

    def one(self, name: str, keys: list[str], args: list):
        """Run one Lua step (one round trip, no pipeline object)."""
        args = self._args(args)
        try:
            result = self.redis.evalsha(self._sha[name], len(keys), *keys, *args)
        except NoScriptError:
            self.load_scripts()
            result = self.redis.evalsha(self._sha[name], len(keys), *keys, *args)
        except ResponseError as exc:
            if "NOSCRIPT" not in str(exc):
                raise
            self.load_scripts()
            result = self.redis.evalsha(self._sha[name], len(keys), *keys, *args)
        return result if self._decoded else _decode(result)

    def run(self, steps: list[tuple[str, list[str], list]]) -> list:
        """Run Lua steps (name, keys, args) in one pipeline; each step is atomic on its own."""
        if not steps:
            return []
        if len(steps) == 1:
            return [self.one(*steps[0])]
        results = self._pipeline(steps)
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)
                   or (isinstance(r, ResponseError) and "NOSCRIPT" in str(r))]
        if missing:
            # NOSCRIPT means the step did nothing: load the scripts, run just those again.
            self.load_scripts()
            again = self._pipeline([steps[i] for i in missing])
            for i, r in zip(missing, again):
                results[i] = r
        for r in results:
            if isinstance(r, Exception):
                raise r
        return results if self._decoded else [_decode(r) for r in results]

    def _pipeline(self, steps) -> list:
        if self.cluster:
            # redis-py's cluster pipeline refuses EVALSHA: send the steps one by one (same order).
            out = []
            for name, keys, args in steps:
                try:
                    out.append(self.redis.evalsha(self._sha[name], len(keys), *keys, *self._args(args)))
                except (NoScriptError, ResponseError) as exc:
                    out.append(exc)
            return out
        pipe = self.redis.pipeline(transaction=False)
        for name, keys, args in steps:
            pipe.evalsha(self._sha[name], len(keys), *keys, *self._args(args))
        return pipe.execute(raise_on_error=False)

    def snapshot(self, agent_ids: list[str], day: str, sticky_key: str | None = None, sid: str = "") -> Snapshot:
        """Everything a decision needs: one round trip (the SNAPSHOT script), and one more
        for the infos of calls this process has not seen yet. ``sid``: a call whose info is
        read afresh in the first (the call being decided)."""
        k = self.keys
        raw = json.loads(self.one("snapshot", self.core() + [sticky_key or k.route_sticky("-")],
                                  [0, "", day, 200, sid]))
        ids = _list(raw.get("ids"))
        rows = dict(zip(ids, _list(raw.get("agents"))))
        # an agent of these rules missing from the roster in force (a reload under way) shows offline
        views = {a: self._view(a, rows[a]) if a in rows else AgentView(a) for a in agent_ids}
        sids, cache = _list(raw.get("calls")), self._infos
        fresh = {}
        if sid and isinstance(raw.get("mine"), str):
            fresh[sid] = raw["mine"]
        missing = [s for s in sids if s not in cache and s not in fresh]
        if missing:
            fresh.update((s, t) for s, t in zip(missing, self.redis.hmget(k.route_calls(), missing)) if t is not None)
        for s, text_ in fresh.items():
            entry = _parse_info(text_)
            if entry is not None:
                cache[s] = entry
        calls, parsed, kept = {}, {}, {}
        for s in sids:
            entry = cache.get(s)
            if entry is not None:
                if entry[1] is _UNPARSED:
                    entry = cache[s] = _parsed(entry[0])
                kept[s] = entry
                calls[s] = entry[0]
                if entry[1] is not None:
                    parsed[s] = entry[1]
        if len(cache) != len(kept):  # calls no longer known are forgotten
            self._infos = kept
        waiting = {s: parsed[s].arrived if s in parsed else 0.0 for s in _list(raw.get("waiting"))}
        return Snapshot(views, calls, waiting, dict(_pairs(raw.get("held"))), set(_list(raw.get("callbacks"))),
                        _list(raw.get("handled")), (raw.get("sticky") or "") if sticky_key else "",
                        indexed=bool(ids), parsed=parsed)

    def _view(self, agent_id: str, row: list) -> AgentView:
        # most agents' rows are as they were at the last read: reuse those views (never changed)
        key = (agent_id, *row)
        view = self._views.get(key)
        if view is None:
            if len(self._views) > 10_000:
                self._views = {}
            view = self._views[key] = AgentView.from_row(agent_id, row)
        return view

    def remember(self, sid: str, info: dict) -> None:
        """The info a step of this process just stored for ``sid`` (no need to read it back;
        parsed when a snapshot first needs it: most calls end before any snapshot)."""
        self._infos[sid] = (info, _UNPARSED)

    def forget(self, sid: str) -> None:
        """``sid``'s info is gone from Redis (a step deleted it): drop this process's copy."""
        self._infos.pop(sid, None)

    def stats(self) -> dict[str, str]:
        return _decode(self.redis.hgetall(self.keys.route_stats())) or {}

    def call_info(self, sid: str) -> dict | None:
        raw = text(self.redis.hget(self.keys.route_calls(), sid))
        return json.loads(raw) if raw else None


def index_problems(redis, keys: Keys, agent_ids: list[str], day: str = "") -> list[str]:
    """Where the indexes disagree with the agent hashes, read in one MULTI/EXEC (empty = consistent).

    The free indexes hold exactly the roster's available agents (scored as the strategies
    read them; a day index ``<field>|<idle>`` by :func:`~ivr.routing.selection.day_score`),
    timers the reserved / wrap-up / paused ones (by ``until``), presence those plus the
    available ones (by last heartbeat), and the roster hash each agent's position. The day
    indexes audited are those ``~indexes`` names just before the read (it changes only at a
    roster adoption or the first such call of a day)."""
    from redis.cluster import RedisCluster

    k = keys
    days = [x for x in text(redis.hget(k.route_roster(), "~indexes") or "").split(",") if "|" in x]
    fields = [d.split("|")[0] for d in days]
    pipe = redis.pipeline(transaction=not isinstance(redis, RedisCluster))
    for a in agent_ids:
        pipe.hmget(k.route_agent(a), "state", "until", "hb", "ended_at", "avail_at", "offered_at", *fields)
    names = ("ended", "avail", "rr", "order")
    for name in (*names, *days):
        pipe.zrange(k.route_free(name), 0, -1, withscores=True)
    pipe.zrange(k.route_timers(), 0, -1, withscores=True)
    pipe.zrange(k.route_presence(), 0, -1, withscores=True)
    pipe.hgetall(k.route_roster())
    out = pipe.execute()
    rows, rest = out[: len(agent_ids)], _decode(out[len(agent_ids):])
    free = {name: dict(z) for name, z in zip((*names, *days), rest)}
    timers, presence, roster = dict(rest[-3]), dict(rest[-2]), rest[-1] or {}
    kinds = [x for x in (roster.pop("~indexes", "") or "").split(",") if x]
    roster.pop("~missed", None)  # the missed-call policy REINDEX keeps there
    problems = []
    if roster != {a: str(i) for i, a in enumerate(agent_ids)}:
        problems.append(f"roster positions {roster} do not match the roster")
    want_free: dict[str, dict[str, float]] = {name: {} for name in (*names, *days)}
    want_timers, want_presence = {}, {}
    for i, (a, row) in enumerate(zip(agent_ids, rows)):
        state, until, hb, ended, avail, offered, *counts = (text(v) for v in row)
        num = lambda v: float(v or 0)  # noqa: E731
        m = f"{i:06d}:{a}"
        if state == "available":
            scores = {"ended": num(ended), "avail": max(num(avail), num(ended)), "rr": num(offered), "order": float(i)}
            for name in names:
                if name == "order" or name in kinds:
                    want_free[name][m] = scores[name]
            for d, count in zip(days, counts):
                want_free[d][m] = day_score(num(count), scores[d.split("|")[1]])
        if state in ("reserved", "wrap_up", "paused"):
            want_timers[a] = num(until)
        if state in ("available", "reserved", "wrap_up", "paused"):
            want_presence[a] = num(hb)
    for name, have, want in [(f"free:{n}", free[n], want_free[n]) for n in (*names, *days)] + \
            [("timers", timers, want_timers), ("presence", presence, want_presence)]:
        problems.extend(_differences(name, have, want))
    return problems


def _differences(name: str, have: dict, want: dict) -> list[str]:
    out = [f"{name}: {m} missing" for m in sorted(set(want) - set(have))]
    out += [f"{name}: {m} should not be there" for m in sorted(set(have) - set(want))]
    out += [f"{name}: {m} scored {have[m]}, the hash says {want[m]}" for m in sorted(set(have) & set(want))
            if have[m] != want[m]]
    return out
