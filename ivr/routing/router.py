"""The router: put a call through to the best free agent at once, or queue it fairly.

The common case, a new call while nobody waits, is ONE Lua step (ROUTE): it runs the
time-outs that are due, then reserves the best free agent who may take the call through
the free-agent indexes the Lua steps keep in step with the agents' hashes (or queues the
call when nobody suitable is free). What the step needs from the rules (the set of
agents who may take the call at its relaxation stage, the strategy's index) is worked
out here once per rules version.

The general path, when calls already wait and someone is free (who gets whom then needs
the whole picture), reads one snapshot of the router's Redis state (one round trip), lets
the pure :mod:`ivr.routing.selection` decide, and applies the decision with Lua steps in
one pipeline (one more round trip). Every Lua step re-checks what it depends on, so
workers racing each other can never double-book an agent or a caller. Time-outs
(wrap-up, missed-call pause, stale reservation, lost heartbeat) and handing waiting
calls to agents who became free happen lazily inside these operations, so the
``<Enqueue>`` wait URL calling :meth:`Router.poll` every few seconds is trigger enough.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from typing import Callable

from ivr.keys import Keys
from ivr.routing import hours, selection
from ivr.routing.ledger import Ledger, Snapshot, call_from_info, text
from ivr.routing.reload import RulesSource
from ivr.routing.rules import Rules

STATUSES = ("available", "offline", "wrap_up_done", "heartbeat")
TOMBSTONE_S = 6 * 3600
ELIGIBLE_TTL_S = 24 * 3600  # a set unused this long goes; ROUTE asks for it again if needed
NO_SUCH_AGENT = "no such agent"  # how SET_STATUS answers for an agent without a hash
REMOVED = "removed from the roster"  # the offline reason of an agent whose offer went when they left it
CALLBACK_MESSAGE = "We will call you back as soon as an agent is free; you keep your place in line."


@dataclass
class CallInfo:
    sid: str
    category: str
    caller: str
    hotline: str
    language: str
    arrived_at: float = 0.0


@dataclass(frozen=True)
class AgentRef:
    id: str
    name: str
    address: str  # client:NAME | sip:... | +E164


@dataclass
class Decision:
    kind: str  # agent | queued | closed | fallback
    queue: str | None = None
    agent: AgentRef | None = None
    position: int | None = None
    expected_wait_s: float | None = None
    message: str = ""
    fallback_number: str | None = None
    callback: bool = False  # max wait passed and the caller's callback request keeps their place

    def to_dict(self) -> dict:
        return asdict(self)


def localized(value: str | dict[str, str], language: str | None) -> str:
    if isinstance(value, str):
        return value
    lang = (language or "").split("-")[0].lower()
    return value.get(language or "", value.get(lang, next(iter(value.values()), "")))


def caller_hash(caller: str) -> str:
    # Keys show up in monitoring tools: never put a raw phone number in one.
    return hashlib.sha256(f"ivr-caller|{caller}".encode()).hexdigest()[:20]


def sticky_window_s(rules: Rules) -> float:
    return rules.rules.sticky.within_hours * 3600


def sticky_agent(raw: str, window_s: float, now: float) -> str:
    """The agent a sticky entry (``<agent id>|<call ended at>``) names, if that call ended
    at most ``window_s`` before ``now`` (the router's clock); else ''. As ROUTE reads it."""
    agent, bar, ended = (raw or "").partition("|")
    try:
        return agent if bar and window_s > 0 and now - float(ended) <= window_s else ""
    except ValueError:
        return ""


@dataclass(frozen=True)
class FastPlan:
    """What the ROUTE step needs for one category at one relaxation stage (per rules version)."""

    key: str              # Redis set of the agents who may take such a call
    agents: tuple[str, ...]
    strategy: str         # queue strategy where the call stands at this stage
    thresholds: tuple[float, ...]


IDLE_INDEX = {"last_call_ended": "ended", "last_available": "avail"}


def free_indexes(rules: Rules) -> list[str]:
    """The free-agent indexes the rules' strategies read (``order`` always: counting, scans)."""
    used = {q.strategy for q in rules.rules.queues.values()}
    out = []
    if "longest_idle" in used:
        out.append(IDLE_INDEX[rules.rules.idle_since])
    if "round_robin" in used:
        out.append("rr")
    return out + ["order"]


class _Fixed:
    def __init__(self, rules: Rules):
        self.rules = rules

    def current(self) -> Rules:
        return self.rules


class Router:
    def __init__(self, redis, keys: Keys, rules_path, agents_path, clock: Callable[[], float] = time.time,
                 reload_interval_s: float = 2.0):
        self.keys, self.clock = keys, clock
        self.ledger = Ledger(redis, keys)
        self.ledger.load_scripts()
        self._per_version: tuple[str, dict] = ("", {})  # rules version, what is worked out for it (_cache)
        self._last_handle: tuple | None = None
        self._chan_name, self._agent_prefix = keys.ops_channel(), keys.route_agent_prefix()
        self._no_sticky = keys.route_sticky("-")  # any {route} key will do when there is no caller
        self.source = RulesSource(rules_path, agents_path, redis, keys, clock, reload_interval_s,
                                  on_change=self._roster_changed)

    @classmethod
    def from_config(cls, config, redis, keys: Keys, clock: Callable[[], float] = time.time) -> "Router":
        return cls(redis, keys, config.path(config.routing.rules), config.path(config.routing.agents),
                   clock, config.routing.reload_interval_s)

    @classmethod
    def read_only(cls, rules: Rules, redis, keys: Keys, clock: Callable[[], float] = time.time) -> "Router":
        """A router over fixed rules that only reads Redis (for :meth:`simulate`)."""
        self = cls.__new__(cls)
        self.keys, self.clock, self.ledger = keys, clock, Ledger(redis, keys)
        self.source = _Fixed(rules)
        self._per_version, self._last_handle = ("", {}), None
        self._chan_name, self._agent_prefix = keys.ops_channel(), keys.route_agent_prefix()
        self._no_sticky = keys.route_sticky("-")  # any {route} key will do when there is no caller
        return self

    @property
    def rules(self) -> Rules:
        return self.source.current()

    # --- the call flow's operations ----------------------------------------------------
    def route(self, call: CallInfo) -> Decision:
        """Reserve the best free agent for the call, or queue it (idempotent per sid)."""
        rules, now = self.rules, self.clock()
        category, cat = rules.category(call.category)
        closed = self._closed(rules, cat.queue, now, call.language)
        if closed is not None:
            return closed
        vip = bool(call.caller) and call.caller in rules.vip_numbers
        chash = caller_hash(call.caller) if call.caller else ""
        sticky_key = self.keys.route_sticky(chash) if chash else None
        arrived = call.arrived_at or now
        info = {"sid": call.sid, "category": category, "queue": cat.queue,
                "priority": cat.priority + (rules.rules.vip.priority_boost if vip else 0),
                "arrived": arrived, "wrap": rules.rules.queues[cat.queue].wrap_up_s, "vip": vip,
                "caller_hash": chash, "hotline": call.hotline, "language": call.language,
                # how long the end of this call is remembered for sticky routing (0 = not)
                "sticky_s": sticky_window_s(rules) if chash else 0,
                "sticky": ""}  # last: the ROUTE step fills in the sticky agent it finds
        kind, agent = self._route_step(rules, now, info, json.dumps(info), sticky_key)
        if kind == "agent":
            return self._agent_decision(rules, agent, info)
        if kind == "gone":
            return Decision("fallback", cat.queue, message="the caller already hung up")
        # queued (position and expected wait need the line), already known, or the general path
        snap = self._read(rules, now, sticky_key, call.sid)
        known = self._known(rules, snap, call.sid, now)
        if known is not None:
            return known
        if kind != "slow":  # it was in line a moment ago and is gone now: the caller hung up
            return Decision("fallback", cat.queue, message="the caller already hung up")
        info["sticky"] = sticky_agent(snap.sticky, sticky_window_s(rules), now)
        return self._place(rules, snap, info, now)

    def poll(self, sid: str, caller: str = "") -> Decision:
        """For a waiting call: agent assigned, still waiting (position, wait), or max wait passed.

        ``caller`` is the number a callback request calls back (kept until an agent has)."""
        rules, now = self.rules, self.clock()
        snap = self._read(rules, now, sid=sid)
        info = snap.calls.get(sid)
        if sid in snap.held:
            return self._agent_decision(rules, snap.held[sid], info, sid, caller)
        if info is None:
            return Decision("fallback", message="the router does not know this call")
        if sid not in snap.waiting:  # a missed offer not yet routed again
            return self._place(rules, snap, info, now)
        waiting = snap.waiting_calls()
        got = self._dispatch(rules, snap, waiting, now)
        if sid in got:
            return self._agent_decision(rules, got[sid], info)
        call = call_from_info(info, callback=sid in snap.callbacks)
        queue_name = selection.current_queue(rules, call, now)
        remaining = [c for c in waiting if c.sid not in got]
        place = selection.place(rules, call, remaining, snap.views, self._handle(snap), now)
        # The first queue on the call's way (its own, then overflow) whose max wait passed decides.
        passed = [rules.rules.queues[q] for q in selection.reached(rules, call.queue, now - call.arrived)
                  if rules.rules.queues[q].max_wait_s and now - call.arrived >= rules.rules.queues[q].max_wait_s]
        if passed:
            after = passed[0].after_max_wait
            message = localized(after.message, info.get("language"))
            if after.action == "callback":
                if not call.callback:
                    self.ledger.run([("mark_callback", self.ledger.core(), [now, self._chan(), sid, caller])])
                return Decision("fallback", queue_name, position=place.position, expected_wait_s=place.expected_wait_s,
                                message=message or CALLBACK_MESSAGE, callback=True)
            self._release(rules, sid, now, "fallback")
            return Decision("fallback", queue_name, message=message, fallback_number=after.number)
        return Decision("queued", queue_name, position=place.position, expected_wait_s=place.expected_wait_s)

    def answered(self, sid: str, agent_id: str) -> bool:
        """The agent picked up: reserved -> on_call (when the call ends, the caller's next
        call within ``sticky.within_hours`` goes to them first). False when the call is
        held by another agent by now (this offer lapsed and the call went on)."""
        now = self.clock()
        keys = self.ledger.core() + [self.keys.route_agent(agent_id)]
        taken = int(self.ledger.one("answered", keys, [now, self._chan(), sid, agent_id]) or 0)
        if taken == 2:  # another agent's unrung offer of this call went: they may take a waiting call
            self.tick()
        return taken > 0

    def dial_result(self, sid: str, agent_id: str, status: str, duration_s: float = 0) -> Decision | None:
        """completed -> the agent wraps up (None); otherwise a miss, and the call is routed again."""
        rules, now = self.rules, self.clock()
        status = (status or "").strip().lower()
        policy = rules.rules.agents
        keys = self.ledger.core() + [self.keys.route_agent(agent_id)]
        args = [now, self._chan(), sid, agent_id, status, float(duration_s or 0), self._day(rules, now),
                policy.missed_pause_s, policy.max_missed]
        result = self.ledger.run([("dial_result", keys, args)])[0]
        if status == "completed" or result in ("completed", "gone"):
            if result == "gone":
                self.tick()
            return None
        snap = self._read(rules, now, sid=sid)
        known = self._known(rules, snap, sid, now)
        if known is not None:
            return known
        info = snap.calls.get(sid)
        return self._place(rules, snap, info, now) if info else None

    def call_ended(self, sid: str) -> None:
        """The caller is gone: release the reservation or queue entry in one atomic step."""
        rules, now = self.rules, self.clock()
        result, waiting = self._release(rules, sid, now, "hangup")
        if result != "callback_kept":  # the step deleted the call's info
            self.ledger.forget(sid)
        if result == "released" and waiting:
            self.tick()  # the freed agent takes the best waiting call now, not at the next poll

    # --- agents --------------------------------------------------------------------------
    def set_status(self, agent_id: str, status: str, reason: str = "") -> dict:
        """available | offline | wrap_up_done | heartbeat; returns {ok, state, message}."""
        rules, now = self.rules, self.clock()
        if status not in STATUSES:
            return {"ok": False, "state": None, "message": f"status must be one of {', '.join(STATUSES)}"}
        if rules.agent(agent_id) is None:
            return {"ok": False, "state": None, "message": f"no agent {agent_id!r} on the roster"}
        keys = self.ledger.core() + [self.keys.route_agent(agent_id)]
        step = ("set_status", keys, [now, self._chan(), agent_id, status, reason or "logged out"])
        ok, state, message = self.ledger.run([step])[0]
        if not ok and text(message).startswith(NO_SUCH_AGENT):
            # Redis lost the agents' hashes (restarted without persistence, flushed): index the
            # roster again (every agent offline, not logged in yet), as ROUTE asks, and retry once
            self._roster_changed(rules)
            ok, state, message = self.ledger.run([step])[0]
        message = text(message)
        if ok and state == "available" and status != "heartbeat":
            self.tick()
        return {"ok": bool(ok), "state": state, "message": message}

    def callback_done(self, sid: str, agent_id: str, talk_s: float = 0, reached: bool = True) -> dict:
        """The agent offered callback request ``sid`` has called the caller back: close it.

        Returns {ok, message}; the agent wraps up as after any call."""
        rules, now = self.rules, self.clock()
        if rules.agent(agent_id) is None:
            return {"ok": False, "message": f"no agent {agent_id!r} on the roster"}
        keys = self.ledger.core() + [self.keys.route_agent(agent_id)]
        ok, message = self.ledger.run([("callback_done", keys, [now, self._chan(), sid, agent_id, max(0.0, float(talk_s)),
                                                                self._day(rules, now),
                                                                "reached" if reached else "unreachable"])])[0]
        if ok:
            self.tick()
        return {"ok": bool(ok), "message": message if isinstance(message, str) else message.decode()}

    def callback_requests(self) -> dict[str, dict]:
        """Open callback requests: sid -> {"at": asked, "number": to call back}."""
        out = {}
        for sid, raw in (self.ledger.redis.hgetall(self.keys.route_callbacks()) or {}).items():
            sid = sid.decode() if isinstance(sid, bytes) else sid
            try:
                value = json.loads(raw)
            except ValueError:
                value = {}
            out[sid] = value if isinstance(value, dict) else {"at": value, "number": ""}
        return out

    def heartbeat(self, agent_id: str) -> dict:
        return self.set_status(agent_id, "heartbeat")

    def tick(self) -> int:
        """Expire what ran out and hand waiting calls to free agents; returns calls assigned."""
        rules, now = self.rules, self.clock()
        snap = self._read(rules, now)
        return len(self._dispatch(rules, snap, snap.waiting_calls(), now))

    # --- snapshots for the API and the ops page -----------------------------------------
    def agents_snapshot(self) -> list[dict]:
        rules, now = self.rules, self.clock()
        snap = self._read(rules, now)
        if self._dispatch(rules, snap, snap.waiting_calls(), now):
            snap = self._read(rules, now)
        offered = {v.call for v in snap.views.values() if v.state == "reserved" and v.call in snap.callbacks}
        callbacks = self.callback_requests() if offered else {}
        out = []
        for agent in rules.roster.agents:
            v = snap.views[agent.id]
            idle_from = v.ended_at if rules.rules.idle_since == "last_call_ended" else max(v.avail_at, v.ended_at)
            out.append({"id": agent.id, "name": agent.name, "address": agent.address, "skills": dict(agent.skills),
                        "state": v.state, "call": v.call or None, "since": v.since, "until": v.until or None,
                        "reason": v.reason, "misses": v.misses, "present": selection.present(rules, v, now),
                        "last_heartbeat": v.hb or None, "calls_today": v.calls_today, "talk_today_s": v.talk_today,
                        "idle_s": round(now - idle_from, 1) if v.state == selection.FREE and idle_from else None,
                        # a callback request offered to the agent: whom to call back (agents see numbers)
                        "callback": ({"sid": v.call, **callbacks.get(v.call, {})} if v.call in offered else None)})
        return out

    def queues_snapshot(self) -> list[dict]:
        rules, now = self.rules, self.clock()
        snap = self._read(rules, now)
        stats, day = self.ledger.stats(), self._day(rules, now)
        handle = self._handle(snap)
        waiting = snap.waiting_calls()
        out = []
        for name, q in rules.rules.queues.items():
            mine = [c for c in waiting if selection.current_queue(rules, c, now) == name]
            able = self._able(rules, name)
            staffed = [a for a in able if snap.views[a.id].state != selection.OFFLINE]
            free = [a for a in able if selection.is_free(rules, snap.views[a.id], now)]
            aht = handle.get(name) or q.default_handle_s
            plan = rules.plan(name)
            out.append({"name": name, "open": plan is None or plan.is_open(now), "strategy": q.strategy,
                        "waiting": len(mine), "callbacks": sum(c.callback for c in mine),
                        "longest_wait_s": round(max((now - c.arrived for c in mine), default=0), 1),
                        "over_service_level": sum(now - c.arrived > q.service_level_s for c in mine),
                        "agents_staffed": len(staffed), "agents_available": len(free),
                        "abandoned_today": int(stats.get(f"abandoned:{name}:{day}", 0)),
                        "average_handle_s": round(aht, 1),
                        "expected_wait_s": math.ceil((len(mine) + 1) * aht / max(1, len(staffed))) if not free else 0})
        return out

    def simulate(self, call: CallInfo) -> dict:
        """What route() would do now, without changing anything (for `ivr rules simulate`).

        The caller's number counts as in :meth:`route`: a VIP number raises the priority,
        and the agent the caller talked to within ``sticky.within_hours`` (by this router's
        clock) comes first if free and able to take the call."""
        rules, now = self.rules, self.clock()
        category, cat = rules.category(call.category)
        vip = bool(call.caller) and call.caller in rules.vip_numbers
        priority = cat.priority + (rules.rules.vip.priority_boost if vip else 0)
        out = {"category": category, "queue": cat.queue, "priority": priority, "vip": vip, "sticky": None}
        closed = self._closed(rules, cat.queue, now, call.language)
        if closed is not None:
            return {**out, "candidates": [], "decision": closed.to_dict()}
        sticky_key = self.keys.route_sticky(caller_hash(call.caller)) if call.caller else None
        snap = self.ledger.snapshot([a.id for a in rules.roster.agents], self._day(rules, now), sticky_key)
        views = selection.after_timeouts(rules, snap.views, now, snap.callbacks)  # as route() would see them
        sticky = sticky_agent(snap.sticky, sticky_window_s(rules), now)
        out["sticky"] = sticky or None
        info = {"sid": call.sid, "category": category, "queue": cat.queue, "priority": priority,
                "arrived": call.arrived_at or now, "sticky": sticky}
        wc = call_from_info(info)
        able = {a.id for a in rules.roster.agents if selection.eligible(rules, wc, a.id, now)}
        free = {i for i in able if selection.is_free(rules, views[i], now)}
        # every agent who may take the call, best first; the sticky agent leads only when free
        ranked = selection.candidates(rules, call_from_info({**info, "sticky": ""}), views, able, now)
        if sticky in free:
            ranked = [sticky] + [i for i in ranked if i != sticky]
        out["candidates"] = [{"id": i, "state": views[i].state, "free": i in free} for i in ranked]
        mine = dict(selection.plan(rules, views, snap.waiting_calls() + [wc], now)).get(call.sid)
        if mine:
            decision = self._agent_decision(rules, mine[0], info)
        else:
            p = selection.place(rules, wc, snap.waiting_calls() + [wc], views, self._handle(snap), now)
            decision = Decision("queued", p.queue, position=p.position, expected_wait_s=p.expected_wait_s)
        return {**out, "decision": decision.to_dict()}

    def close(self) -> None:
        """Nothing to stop: the Redis client belongs to the store."""

    # --- internals -------------------------------------------------------------------------
    def _chan(self) -> str:
        return self._chan_name

    def _cache(self, rules: Rules) -> dict:
        """What is worked out once per rules version (a fresh one when another is in force;
        read as one pair, so a thread never gets another version's dict)."""
        version, cache = self._per_version
        if version != rules.version:
            cache = {}
            self._per_version = (rules.version, cache)
        return cache

    def _day(self, rules: Rules, now: float) -> str:
        return hours.day_of(now, rules.rules.timezone)

    def _cutoff(self, rules: Rules, now: float) -> float:
        timeout = rules.rules.agents.heartbeat_timeout_s
        return now - timeout if timeout > 0 else 0

    def _read(self, rules: Rules, now: float, sticky_key: str | None = None, sid: str = "") -> Snapshot:
        """The snapshot after the time-outs due; ``sid``: the call being decided (its info fresh)."""
        ids = [a.id for a in rules.roster.agents]
        day = self._day(rules, now)
        snap = self.ledger.snapshot(ids, day, sticky_key, sid)
        if not snap.indexed:  # Redis lost the roster and indexes (flushed): rebuild, read again
            self._roster_changed(rules)
            snap = self.ledger.snapshot(ids, day, sticky_key, sid)
        due = selection.due(rules, snap.views, now)
        if due:
            keys = self.ledger.core() + [self.keys.route_agent(i) for i in due]
            self.ledger.run([("expire", keys, [now, self._chan(), self._cutoff(rules, now), *due])])
            snap = self.ledger.snapshot(ids, day, sticky_key, sid)
        return snap

    def _route_step(self, rules: Rules, now: float, info: dict, text: str, sticky_key: str | None) -> tuple[str, str]:
        """The ROUTE step for a new call (``text``: its info as JSON):
        ('agent', id) | ('queued'|'waiting'|'gone'|'slow', '')."""
        fast = self._fast_plan(rules, info["category"], info["queue"], now - info["arrived"])
        strategy = fast.strategy
        idle = IDLE_INDEX[rules.rules.idle_since]
        if strategy == "longest_idle":
            how = idle
        elif strategy == "round_robin":
            how = "rr"
        elif strategy == "fixed_order":
            how = "order"
        else:
            how = ("calls:" if strategy == "fewest_calls" else "talk:") + self._day(rules, now)
        keys = self.ledger.core() + [sticky_key or self._no_sticky, fast.key]
        args = [now, self._chan(), info["sid"], text, info["arrived"],
                now + rules.rules.agents.reservation_timeout_s, self._cutoff(rules, now), info["queue"],
                how, idle, sticky_window_s(rules) if sticky_key else 0]
        result = self.ledger.one("route", keys, args)
        if result[0] == "noelig":  # first call of this kind under these rules (or the set expired)
            self._write_eligible(fast)
            result = self.ledger.one("route", keys, args)
        if result[0] == "reindex":  # Redis lost the roster and indexes: rebuild them from the agents' hashes
            self._roster_changed(rules)
            result = self.ledger.one("route", keys, args)
        if len(result) > 2:  # the step stored the info (and the sticky agent it found)
            self.ledger.remember(info["sid"], {**info, "sticky": result[2]} if result[2] else info)
        return result[0], result[1]

    def _able(self, rules: Rules, queue: str) -> list:
        """Roster agents who can serve ``queue`` at its most relaxed step (cached per rules version)."""
        cache = self._cache(rules)
        able = cache.get(("able", queue))
        if able is None:
            need = selection.relaxed(rules, "", queue, float("inf"))
            able = cache[("able", queue)] = [a for a in rules.roster.agents if selection.can_serve(a.skills, need)]
        return able

    def _fast_plan(self, rules: Rules, category: str, queue: str, wait_s: float) -> FastPlan:
        """Who may take a new call of ``category`` after ``wait_s`` (cached per rules version).

        Skill minimums relax and overflow widens at fixed waits (the thresholds); between
        two thresholds the answer is the same, so it is worked out once per stage."""
        cache = self._cache(rules)
        base = cache.get((category, None))
        if base is None:
            at = {t for _, t in rules.chain(queue) if t > 0}
            at |= {step.after_s for q, _ in rules.chain(queue) for step in rules.rules.queues[q].relax}
            base = FastPlan("", (), "", tuple(sorted(at)))
            cache[(category, None)] = base
        wait_s = max(0.0, wait_s)
        stage = bisect.bisect_right(base.thresholds, wait_s)
        plan = cache.get((category, stage))
        if plan is None:
            now = self.clock()
            probe = selection.WaitingCall("", category, queue, 0, now - wait_s)
            need = selection.needs(rules, probe, now)
            agents = tuple(a.id for a in rules.roster.agents if selection.eligible(rules, probe, a.id, now, need))
            strategy = rules.rules.queues[selection.current_queue(rules, probe, now)].strategy
            plan = FastPlan(self.keys.route_eligible(rules.version, category, stage), agents, strategy,
                            base.thresholds)
            cache[(category, stage)] = plan
        return plan

    def _write_eligible(self, fast: FastPlan) -> None:
        # The content depends only on the rules version: workers writing it at once agree.
        # "~" (no valid agent id) keeps a set nobody is in yet from vanishing.
        redis = self.ledger.redis
        redis.sadd(fast.key, "~", *fast.agents)
        redis.expire(fast.key, ELIGIBLE_TTL_S)

    def _handle(self, snap: Snapshot) -> dict[str, float]:
        # the recent handling times change only when a call ends: polls in between reuse the means
        key = tuple(snap.handled)
        last = self._last_handle
        if last is not None and last[0] == key:
            return last[1]
        means = selection.average_handle(snap.handled)
        self._last_handle = (key, means)
        return means

    def _assign_step(self, rules: Rules, now: float, agent_id: str, sids: list[str]):
        keys = self.ledger.core() + [self.keys.route_agent(agent_id)]
        deadline = now + rules.rules.agents.reservation_timeout_s
        return ("assign", keys, [now, self._chan(), agent_id, deadline, self._cutoff(rules, now), *sids])

    def _assign_steps(self, rules, pairs, waiting, now, skip: str = ""):
        steps, agents = [], []
        ordered = selection.order(waiting) if pairs else []
        for sid, ranked in pairs:
            if sid == skip:
                continue
            agent = ranked[0]
            # The planned call first; then the next calls this agent could serve, should a
            # racing worker have taken the planned one.
            others = []
            for c in ordered:
                if c.sid != sid and selection.eligible(rules, c, agent, now):
                    others.append(c.sid)
                    if len(others) == 10:
                        break
            steps.append(self._assign_step(rules, now, agent, [sid] + others))
            agents.append(agent)
        return steps, agents

    def _dispatch(self, rules: Rules, snap: Snapshot, waiting, now: float) -> dict[str, str]:
        """Assign waiting calls to free agents; returns {sid: agent} actually assigned."""
        pairs = selection.plan(rules, snap.views, waiting, now)
        steps, agents = self._assign_steps(rules, pairs, waiting, now)
        results = self.ledger.run(steps)
        return {sid: agent for sid, agent in zip(results, agents) if sid}

    def _place(self, rules: Rules, snap: Snapshot, info: dict, now: float) -> Decision:
        call = call_from_info(info)
        waiting = [c for c in snap.waiting_calls() if c.sid != call.sid]
        pairs = selection.plan(rules, snap.views, waiting + [call], now)
        steps, agents = self._assign_steps(rules, pairs, waiting, now, skip=call.sid)
        claimed = set(agents)
        mine = dict(pairs).get(call.sid) or []
        cands = mine[:1] + [a for a in mine[1:] if a not in claimed]
        keys = self.ledger.core() + [self.keys.route_agent(a) for a in cands]
        args = [now, self._chan(), call.sid, json.dumps(info), call.arrived,
                now + rules.rules.agents.reservation_timeout_s, self._cutoff(rules, now), call.queue, *cands]
        results = self.ledger.run(steps + [("reserve", keys, args)])
        kind, agent = results[-1][:2]
        if len(results[-1]) > 2:
            self.ledger.remember(call.sid, info)
        if kind == "agent":
            return self._agent_decision(rules, agent, info)
        if kind == "gone":
            return Decision("fallback", call.queue, message="the caller already hung up")
        assigned = {sid for sid in results[:-1] if sid}
        remaining = [c for c in waiting if c.sid not in assigned] + [call]
        p = selection.place(rules, call, remaining, snap.views, self._handle(snap), now)
        return Decision("queued", p.queue, position=p.position, expected_wait_s=p.expected_wait_s)

    def _known(self, rules: Rules, snap: Snapshot, sid: str, now: float) -> Decision | None:
        info = snap.calls.get(sid)
        if sid in snap.held:
            return self._agent_decision(rules, snap.held[sid], info)
        if sid in snap.waiting and info is not None:
            call = call_from_info(info)
            p = selection.place(rules, call, snap.waiting_calls(), snap.views, self._handle(snap), now)
            return Decision("queued", p.queue, position=p.position, expected_wait_s=p.expected_wait_s)
        return None

    def _agent_decision(self, rules: Rules, agent_id: str, info: dict | None, sid: str = "",
                        caller: str = "") -> Decision:
        """The call (``sid``, else the info's) goes to ``agent_id``. An agent off the roster in
        force cannot be dialled (no address): see :meth:`_off_roster`."""
        cache = self._cache(rules)
        ref = cache.get(("ref", agent_id))
        if ref is None:
            agent = rules.agent(agent_id)
            if agent is None:
                return self._off_roster(rules, agent_id, sid or (info or {}).get("sid") or "", info, caller)
            ref = cache[("ref", agent_id)] = AgentRef(agent_id, agent.name, agent.address)
        return Decision("agent", (info or {}).get("queue"), agent=ref)

    def _off_roster(self, rules: Rules, agent_id: str, sid: str, info: dict | None, caller: str) -> Decision:
        """The call is held by an agent no longer on the roster (REINDEX takes such offers
        back; this covers a worker that read the hold before it did): their offer goes, as
        when they log out (the call back in line at its original arrival, they offline), and
        the call is decided anew. An agent who is on the call keeps it; a webhook asking about
        it then is answered with the fallback (the router cannot dial them)."""
        now = self.clock()
        keys = self.ledger.core() + [self.keys.route_agent(agent_id)]
        self.ledger.run([("set_status", keys, [now, self._chan(), agent_id, "offline", REMOVED])])
        held = text(self.ledger.redis.hget(self.keys.route_held(), sid)) if sid else agent_id
        if held == agent_id:  # still theirs (on the call), or no call to decide anew
            return Decision("fallback", (info or {}).get("queue"),
                            message=f"the agent holding this call ({agent_id}) is no longer on the roster")
        return self.poll(sid, caller)

    def _closed(self, rules: Rules, queue: str, now: float, language: str | None) -> Decision | None:
        plan = rules.plan(queue)
        if plan is None or plan.is_open(now):
            return None
        s = rules.schedule(queue)
        return Decision("closed", queue, message=localized(s.closed_message, language), fallback_number=s.closed_number)

    def _release(self, rules: Rules, sid: str, now: float, mode: str) -> tuple[str, int]:
        args = [now, self._chan(), sid, self._agent_prefix, self._day(rules, now), mode, now - TOMBSTONE_S]
        return self.ledger.run([("release", self.ledger.core(), args)])[0]

    def _roster_changed(self, rules: Rules) -> None:
        ids = [a.id for a in rules.roster.agents]
        keys = self.ledger.core() + [self.keys.route_agent(i) for i in ids]
        policy = rules.rules.agents
        self.ledger.one("reindex", keys, [self.clock(), self._chan(), "," + ",".join(free_indexes(rules)) + ",",
                                          f"{policy.missed_pause_s}|{policy.max_missed}", *ids])
