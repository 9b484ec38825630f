"""The live page's data, shaped from what the router, the sessions and the counters say.

Pure functions over plain inputs (no Redis, no Flask): :mod:`ivr.ops.gather` reads the
inputs, the hub builds one snapshot per interval and every viewer gets the same JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STATE_ORDER = ("on_call", "reserved", "wrap_up", "available", "paused", "offline")
CALL_FIELDS = ("state", "hotline", "language", "partial", "transcript", "category", "confidence",
               "queue", "agent", "reprompts", "started_at", "queued_at", "updated_at", "outcome")
MAX_CALLS = 200  # calls listed on the page; the count says how many there are in all


@dataclass
class Inputs:
    """Everything one snapshot is made of, as read at ``now``."""

    now: float
    day: str
    agents: list[dict] = field(default_factory=list)      # Router.agents_snapshot()
    queues: list[dict] = field(default_factory=list)      # Router.queues_snapshot()
    calls: list[dict] = field(default_factory=list)       # session hashes of live calls (sid added)
    calls_total: int = 0
    daily: dict = field(default_factory=dict)             # keys.daily_stats(day)
    tally: dict = field(default_factory=dict)             # DayTally.figures()
    rules_state: dict = field(default_factory=dict)       # keys.rules_state() without the texts
    rules: object | None = None                           # ivr.routing.rules.Rules in force here
    problems: dict = field(default_factory=dict)


def _num(value, kind=float, default=0):
    try:
        return kind(float(value))
    except (TypeError, ValueError):
        return default


def _share(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


def agent_row(a: dict) -> dict:
    return {"id": a["id"], "name": a.get("name") or a["id"], "state": a.get("state") or "offline",
            "since": a.get("since") or None, "until": a.get("until") or None, "reason": a.get("reason") or "",
            "misses": int(a.get("misses") or 0), "call": a.get("call") or None,
            "calls_today": int(a.get("calls_today") or 0), "talk_today_s": round(_num(a.get("talk_today_s")), 1)}


def agent_counts(agents: list[dict]) -> dict[str, int]:
    counts = dict.fromkeys(STATE_ORDER, 0)
    for a in agents:
        counts[a["state"]] = counts.get(a["state"], 0) + 1
    return counts


def call_row(c: dict) -> dict:
    row = {"sid": c["sid"]}
    for key in CALL_FIELDS:
        row[key] = c.get(key) or ""
    for key in ("started_at", "queued_at", "updated_at", "confidence"):
        row[key] = _num(row[key]) or None
    row["reprompts"] = _num(row["reprompts"], int)
    return row


def today(daily: dict, tally: dict, agents: list[dict]) -> dict:
    """The day's figures. Rates are shares of the day's calls (None before the first call)."""
    calls = _num(daily.get("calls"), int)
    answered = _num(daily.get("answered"), int)
    abandoned = _num(daily.get("abandoned"), int)
    # "fallback": calls still not understood after the re-prompt (sent to the general queue);
    # "fallback_number": calls put through to a fallback number (max wait, router failure).
    fallback = _num(daily.get("fallback"), int)
    fallback_number = _num(daily.get("fallback_number"), int)
    reprompts = _num(daily.get("reprompts"), int)
    first = _num(daily.get("routed_first_utterance"), int)
    handled = sum(a.get("calls_today") or 0 for a in agents)
    talk = sum(_num(a.get("talk_today_s")) for a in agents)
    measured = _num(tally.get("answered"), int)
    within = _num(tally.get("within_target"), int)
    return {
        "calls": calls, "answered": answered, "abandoned": abandoned, "fallback": fallback,
        "fallback_number": fallback_number,
        "reprompts": reprompts, "routed_first_utterance": first,
        "answered_within_target": within, "answered_measured": measured,
        "answered_within_target_share": _share(within, measured),
        "abandoned_share": _share(abandoned, calls),
        "average_handle_s": round(talk / handled, 1) if handled else None,
        "average_wait_s": round(_num(tally.get("wait_s")) / measured, 1) if measured else None,
        "routed_first_utterance_share": _share(first, calls),
        "reprompt_rate": _share(reprompts, calls),
        "fallback_rate": _share(fallback, calls),
    }


def target_s(rules, queue: str, category: str) -> float | None:
    """Answer-within target of a call: its category's promise, else its queue's service level."""
    if rules is None:
        return None
    cat = rules.rules.categories.get(category)
    if cat is not None and cat.promise_s:
        return cat.promise_s
    q = rules.rules.queues.get(queue)
    return q.service_level_s if q is not None else None


def rules_view(rules, state: dict) -> dict:
    """The rules and roster in force here, when they were loaded, and the last refused edit."""
    view = {k: state.get(k) or "" for k in ("version", "loaded_by", "rules_file", "agents_file", "refused")}
    view["loaded_at"] = _num(state.get("loaded_at")) or None
    view["refused_at"] = _num(state.get("refused_at")) or None
    if view["refused"]:  # the parser quotes the bad value: a VIP caller's number, say
        from ivr.ops.masking import mask

        view["refused"] = mask(view["refused"])
    if rules is None:
        view.update(in_force="", queues=[], categories=[], agents_on_roster=0)
        return view
    r = rules.rules
    view["in_force"] = rules.version
    view["timezone"] = r.timezone
    view["agents_on_roster"] = len(rules.roster.agents)
    view["queues"] = [{"name": name, "strategy": q.strategy, "skills": dict(q.skills), "hours": q.hours or "always",
                       "service_level_s": q.service_level_s, "wrap_up_s": q.wrap_up_s,
                       "max_wait_s": q.max_wait_s, "after_max_wait": q.after_max_wait.action if q.max_wait_s else "",
                       "overflow": f"{q.overflow.to} after {q.overflow.after_s:g} s" if q.overflow else ""}
                      for name, q in r.queues.items()]
    view["categories"] = [{"name": name, "queue": c.queue, "priority": c.priority, "promise_s": c.promise_s}
                          for name, c in r.categories.items()]
    return view


def build(inp: Inputs) -> dict:
    agents = [agent_row(a) for a in inp.agents]
    agents.sort(key=lambda a: (STATE_ORDER.index(a["state"]) if a["state"] in STATE_ORDER else 99, a["name"]))
    calls = [call_row(c) for c in inp.calls[:MAX_CALLS]]
    calls.sort(key=lambda c: c["started_at"] or 0)
    return {
        "now": inp.now,
        "day": inp.day,
        "agents": agents,
        "agent_counts": agent_counts(agents),
        "queues": inp.queues,
        "waiting": sum(int(q.get("waiting") or 0) for q in inp.queues),
        "calls": calls,
        "calls_total": max(inp.calls_total, len(inp.calls)),
        "today": today(inp.daily, inp.tally, inp.agents),
        "rules": rules_view(inp.rules, inp.rules_state),
        "problems": dict(inp.problems),
    }
