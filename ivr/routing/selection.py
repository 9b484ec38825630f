"""Who should take which call: pure functions over the rules and a snapshot of agents.

Nothing here talks to Redis. The router reads a snapshot, asks :func:`plan` for the best
pairs, and the Lua scripts apply them only if the agent is still free and the call still
waiting, so a stale plan can cost fairness for a moment but never correctness.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field, replace

from ivr.routing.rules import Rules

FREE, RESERVED, ON_CALL, WRAP_UP, PAUSED, OFFLINE = "available", "reserved", "on_call", "wrap_up", "paused", "offline"
STATES = (FREE, RESERVED, ON_CALL, WRAP_UP, PAUSED, OFFLINE)


@dataclass
class AgentView:
    """One agent's live state as stored in its Redis hash (a plain record: never changed)."""

    id: str
    state: str = OFFLINE
    call: str = ""
    until: float = 0.0
    hb: float = 0.0
    ended_at: float = 0.0
    avail_at: float = 0.0
    offered_at: float = 0.0
    answered_at: float = 0.0
    since: float = 0.0
    misses: int = 0
    reason: str = ""
    calls_today: int = 0
    talk_today: float = 0.0

    @classmethod
    def from_row(cls, agent_id: str, row: list) -> "AgentView":
        """From the SNAPSHOT script's HMGET row (missing fields are false)."""
        if len(row) < 13:
            row = list(row) + [False] * (13 - len(row))
        state, call, until, hb, ended, avail, offered, answered, since, misses, reason, calls, talk = row[:13]
        return cls(agent_id, state or OFFLINE, call or "", float(until or 0), float(hb or 0), float(ended or 0),
                   float(avail or 0), float(offered or 0), float(answered or 0), float(since or 0),
                   int(float(misses or 0)), reason or "", int(float(calls or 0)), float(talk or 0))

    @classmethod
    def from_hash(cls, agent_id: str, h: dict, day: str) -> "AgentView":
        f = lambda k: float(h.get(k) or 0)  # noqa: E731
        return cls(agent_id, h.get("state") or OFFLINE, h.get("call") or "", f("until"), f("hb"), f("ended_at"),
                   f("avail_at"), f("offered_at"), f("answered_at"), f("since"), int(f("misses")), h.get("reason") or "",
                   int(f(f"calls:{day}")), f(f"talk:{day}"))


@dataclass(frozen=True)
class WaitingCall:
    """A call the router knows: original arrival, category's queue and priority."""

    sid: str
    category: str
    queue: str
    priority: int
    arrived: float
    callback: bool = False
    sticky: str = ""  # the agent this caller had last time (within sticky.within_hours)
    extra: dict = field(default_factory=dict, compare=False)


def relaxed(rules: Rules, category: str, queue: str, wait_s: float) -> dict[str, int]:
    """Minimum skill levels for a call of ``category`` in ``queue`` after waiting ``wait_s``."""
    q = rules.rules.queues[queue]
    need = dict(q.skills)
    cat = rules.rules.categories.get(category)
    if cat is not None and cat.queue == queue:
        for name, level in cat.skills.items():
            need[name] = max(need.get(name, 0), level)
    # Steps are not cumulative: the last step reached says how far below the start we are.
    drop = max((step.lower_by for step in q.relax if wait_s >= step.after_s), default=0)
    return {name: max(1, level - drop) for name, level in need.items()}


def can_serve(skills: dict[str, int], need: dict[str, int]) -> bool:
    return all(skills.get(name, 0) >= level for name, level in need.items())


def reached(rules: Rules, queue: str, wait_s: float) -> list[str]:
    """The queue and the overflow queues the call has reached by now (overflow widens)."""
    wait_s = max(0.0, wait_s)  # another worker's clock may run a hair ahead of ours
    return [name for name, at in rules.chain(queue) if wait_s >= at]


def current_queue(rules: Rules, call: WaitingCall, now: float) -> str:
    wait = max(0.0, now - call.arrived)
    out = call.queue
    for name, at in rules.chain(call.queue):  # in order of the wait at which each is reached
        if wait < at:
            break
        out = name
    return out


# Every poll asks, for every waiting call, what it needs and who may take it. The answer
# changes only when the call's wait crosses one of a few thresholds (an overflow, a relax
# step), so it is worked out once per (category, queue, stage) and rules version.
def _stage(rules: Rules, call: WaitingCall, now: float) -> tuple:
    memo = rules.memo
    th = memo.get(("thresholds", call.queue))
    if th is None:
        chain = rules.chain(call.queue)
        at = {t for _, t in chain} | {step.after_s for q, _ in chain for step in rules.rules.queues[q].relax}
        th = memo[("thresholds", call.queue)] = tuple(sorted(at))
    return call.category, call.queue, bisect.bisect_right(th, max(0.0, now - call.arrived))


def _spans(rules: Rules, queue: str) -> dict[str, tuple[float, float]]:
    """For each queue whose calls come to ``queue`` (itself, or by overflow): the waits
    [from, to) during which such a call's current queue is ``queue``."""
    key = ("spans", queue)
    hit = rules.memo.get(key)
    if hit is None:
        hit = {}
        for origin in rules.rules.queues:
            chain = rules.chain(origin)
            for k, (name, at) in enumerate(chain):
                if name == queue:
                    hit[origin] = (at, chain[k + 1][1] if k + 1 < len(chain) else float("inf"))
        rules.memo[key] = hit
    return hit


def needs(rules: Rules, call: WaitingCall, now: float) -> list[dict[str, int]]:
    """The skill minimums of each queue the call has reached by now; meeting any one suffices."""
    key = ("needs",) + _stage(rules, call, now)
    hit = rules.memo.get(key)
    if hit is None:
        wait = max(0.0, now - call.arrived)
        hit = rules.memo[key] = [relaxed(rules, call.category, q, wait) for q in reached(rules, call.queue, wait)]
    return hit


def able(rules: Rules, call: WaitingCall, now: float) -> frozenset[str]:
    """The roster agents who may take ``call`` now (whatever their state)."""
    key = ("able",) + _stage(rules, call, now)
    hit = rules.memo.get(key)
    if hit is None:
        need = needs(rules, call, now)
        hit = rules.memo[key] = frozenset(a.id for a in rules.roster.agents
                                          if any(can_serve(a.skills, n) for n in need))
    return hit


def eligible(rules: Rules, call: WaitingCall, agent_id: str, now: float, need: list | None = None) -> bool:
    if need is None:
        return agent_id in able(rules, call, now)
    agent = rules.agent(agent_id)
    if agent is None:
        return False
    return any(can_serve(agent.skills, n) for n in need)


def present(rules: Rules, view: AgentView, now: float) -> bool:
    timeout = rules.rules.agents.heartbeat_timeout_s
    return timeout <= 0 or view.hb >= now - timeout


def is_free(rules: Rules, view: AgentView, now: float) -> bool:
    return view.state == FREE and present(rules, view, now)


def day_score(value: float, idle: float) -> float:
    """How fewest calls / least talk today rank an agent, as the routing steps' day indexes
    score them: the day's count (talk: whole seconds) first, then the longest idle."""
    return math.floor(value) * 1e10 + idle


def rank_key(rules: Rules, strategy: str, view: AgentView) -> tuple:
    order = rules.order_of.get(view.id, 1 << 30)
    idle = view.ended_at if rules.rules.idle_since == "last_call_ended" else max(view.avail_at, view.ended_at)
    if strategy == "fewest_calls":
        return (day_score(view.calls_today, idle), order)
    if strategy == "least_talk_time":
        return (day_score(view.talk_today, idle), order)
    if strategy == "round_robin":
        return (view.offered_at, order)
    if strategy == "fixed_order":
        return (order,)
    return (idle, order)  # longest_idle: the earliest idle-since first


def candidates(rules: Rules, call: WaitingCall, views: dict[str, AgentView], free: set[str], now: float) -> list[str]:
    """Free agents who can take ``call`` now, best first (its previous agent first if sticky)."""
    strategy = rules.rules.queues[current_queue(rules, call, now)].strategy
    ok = able(rules, call, now)
    ids = [i for i in free if i in ok]
    ids.sort(key=lambda i: rank_key(rules, strategy, views[i]))
    if call.sticky and call.sticky in ids:
        ids.remove(call.sticky)
        ids.insert(0, call.sticky)
    return ids


def order(calls: list[WaitingCall]) -> list[WaitingCall]:
    """Highest priority first, then the longest waiting (by original arrival)."""
    return sorted(calls, key=lambda c: (-c.priority, c.arrived, c.sid))


def plan(rules: Rules, views: dict[str, AgentView], calls: list[WaitingCall], now: float) -> list[tuple[str, list[str]]]:
    """Greedy matching: each waiting call, best first, gets its best free agent.

    Returns ``(sid, agents)`` pairs; the first agent is the choice, the rest are
    fall-backs for the Lua step should another worker have taken the first meanwhile.
    """
    free = {i for i, v in views.items() if is_free(rules, v, now)}
    out = []
    if not free:
        return out
    for call in order(calls):
        if not free:
            break
        ranked = candidates(rules, call, views, free, now)
        if ranked:
            free.discard(ranked[0])
            out.append((call.sid, ranked))
    return out


def due(rules: Rules, views: dict[str, AgentView], now: float) -> list[str]:
    """Agents whose reservation, wrap-up or pause has run out, or whose heartbeat stopped."""
    out = []
    timeout = rules.rules.agents.heartbeat_timeout_s
    for v in views.values():
        stale = timeout > 0 and v.state in (FREE, PAUSED, WRAP_UP, RESERVED) and v.hb < now - timeout
        if stale or (v.state in (RESERVED, WRAP_UP, PAUSED) and v.until <= now):
            out.append(v.id)
    return out


def after_timeouts(rules: Rules, views: dict[str, AgentView], now: float,
                   callbacks: set[str] | frozenset[str] = frozenset()) -> dict[str, AgentView]:
    """The agents as the time-outs due by ``now`` would leave them (what EXPIRE writes), for
    previews that must not write: a stopped heartbeat -> offline; a reservation, wrap-up or
    missed-call pause that ran out -> available, except the offer of a callback request
    (``callbacks``: their sids), which stays the agent's while their app's heartbeat is
    current and, with no heartbeats tracked, counts as a missed call when let pass."""
    policy = rules.rules.agents
    timeout = policy.heartbeat_timeout_s
    out = {}
    for agent_id, v in views.items():
        if timeout > 0 and v.state in (FREE, PAUSED, WRAP_UP, RESERVED) and v.hb < now - timeout:
            v = replace(v, state=OFFLINE, call="", until=0.0)
        elif v.state == RESERVED and v.until <= now and v.call in callbacks and timeout > 0:
            v = replace(v, until=now + timeout)  # the app is alive: the callback stays the agent's
        elif v.state == RESERVED and v.until <= now and v.call in callbacks:
            misses = v.misses + 1
            v = replace(v, state=OFFLINE if misses >= policy.max_missed else PAUSED, call="", misses=misses,
                        until=0.0 if misses >= policy.max_missed else now + policy.missed_pause_s)
        elif v.state == RESERVED and v.until <= now:
            v = replace(v, state=FREE, call="", until=0.0, avail_at=now)
        elif v.state in (WRAP_UP, PAUSED) and v.until <= now:
            v = replace(v, state=FREE, until=0.0, avail_at=v.until)
        out[agent_id] = v
    return out


@dataclass(frozen=True)
class Place:
    queue: str
    position: int
    expected_wait_s: float


def place(rules: Rules, call: WaitingCall, waiting: list[WaitingCall], views: dict[str, AgentView],
          handle_s: dict[str, float], now: float) -> Place:
    """Where ``call`` stands: position in its current queue and the expected wait."""
    queue = current_queue(rules, call, now)
    # the calls of the queue ahead of it in order(): higher priority, then earlier arrival
    spans = _spans(rules, queue)
    mine = (-call.priority, call.arrived, call.sid)
    listed, in_queue, before = False, 0, 0
    for c in waiting:
        if c.sid == call.sid:
            listed = True
            continue
        span = spans.get(c.queue)
        if span is None:
            continue
        wait = now - c.arrived
        if span[0] <= (wait if wait > 0 else 0.0) < span[1]:  # current_queue(c) == queue
            in_queue += 1
            before += (-c.priority, c.arrived, c.sid) < mine
    position = 1 + (before if listed else in_queue)
    ok = able(rules, call, now)
    staffed = sum(1 for v in views.values() if v.state != OFFLINE and v.id in ok)
    aht = handle_s.get(queue) or rules.rules.queues[queue].default_handle_s
    expected = math.ceil(position * aht / max(1, staffed))
    return Place(queue, position, float(expected))


def average_handle(entries: list[str], window: int = 20) -> dict[str, float]:
    """Mean handling seconds per queue from ``queue|seconds`` entries, newest first."""
    per: dict[str, list[float]] = {}
    for e in entries:
        q, _, s = e.rpartition("|")
        try:
            vals = per.setdefault(q, [])
            if len(vals) < window:
                vals.append(float(s))
        except ValueError:
            continue
    return {q: sum(v) / len(v) for q, v in per.items() if v}
