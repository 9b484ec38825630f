"""Read what the live page shows from Redis and the router, in a few round trips.

:func:`collect` returns :class:`ivr.ops.snapshot.Inputs`. The day's answered-within-target
figure comes from the call records stream, read incrementally by :class:`DayTally` (only
the records added since the last look), so 2,000 calls a day cost a few entries per look.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime

import redis as redis_lib

from ivr.ops import snapshot

log = logging.getLogger(__name__)

RULES_META = ("version", "loaded_at", "loaded_by", "rules_file", "agents_file", "refused", "refused_at")
BATCH = 500


def day_of(now: float) -> str:
    """Today as the day counters count it (:func:`ivr.ops.records.bump_daily`: the server's date)."""
    return datetime.fromtimestamp(now).date().isoformat()


def midnight_ms(day: str) -> int:
    """The records stream ID (milliseconds) where ``day`` starts, server time."""
    return int(datetime.fromisoformat(day).timestamp() * 1000)


def record_of(fields: dict) -> dict:
    """A records-stream entry as a dict: one JSON field, or flat fields."""
    if len(fields) == 1:
        (value,) = fields.values()
        try:
            parsed = json.loads(value)
            if isinstance(parsed, dict):
                return parsed
        except (TypeError, ValueError):
            pass
    return fields


class DayTally:
    """Answered calls of the day and how many within their target, from the records stream."""

    def __init__(self):
        self.day = ""
        self.last_id = "-"
        self.answered = self.within = 0
        self.wait_s = 0.0

    def refresh(self, redis, keys, rules, day: str) -> dict:
        if day == self.day and self.answered and not redis.xrange(keys.records(), min=self.last_id,
                                                                  max=self.last_id, count=1):
            self.day = ""  # the stream lost what was counted (Redis restarted without its data): count anew
        if day != self.day:
            self.day, self.last_id = day, f"{midnight_ms(day)}-0"
            self.answered = self.within = 0
            self.wait_s = 0.0
            first = True
        else:
            first = False
        while True:
            start = self.last_id if first else "(" + self.last_id
            entries = redis.xrange(keys.records(), min=start, max="+", count=BATCH)
            first = False
            for entry_id, fields in entries:
                self.last_id = entry_id
                self.add(record_of(fields), rules)
            if len(entries) < BATCH:
                break
        return self.figures()

    def add(self, record: dict, rules) -> None:
        if record.get("outcome") != "answered":
            return
        wait = snapshot._num(record.get("wait_s"))
        self.answered += 1
        self.wait_s += wait
        target = snapshot.target_s(rules, record.get("queue") or "", record.get("category") or "")
        if target is None or wait <= target:
            self.within += 1

    def figures(self) -> dict:
        return {"answered": self.answered, "within_target": self.within, "wait_s": round(self.wait_s, 3)}


def live_calls(redis, keys, limit: int = snapshot.MAX_CALLS) -> tuple[list[dict], int]:
    """The newest ``limit`` calls in progress (session hashes) and how many there are."""
    pipe = redis.pipeline(transaction=False)
    pipe.zcard(keys.live_calls())
    pipe.zrevrange(keys.live_calls(), 0, limit - 1)
    total, sids = pipe.execute()
    if not sids:
        return [], int(total)
    pipe = redis.pipeline(transaction=False)
    for sid in sids:
        pipe.hmget(keys.call(sid), snapshot.CALL_FIELDS)
    calls = []
    for sid, values in zip(sids, pipe.execute()):
        row = dict(zip(snapshot.CALL_FIELDS, values))
        if row["state"] and row["state"] != "ended":
            row["sid"] = sid
            calls.append(row)
    return calls, int(total)


def rules_state(redis, keys) -> dict:
    values = redis.hmget(keys.rules_state(), RULES_META)
    return {k: v for k, v in zip(RULES_META, values) if v is not None}


def collect(services, tally: DayTally, clock=time.time) -> snapshot.Inputs:
    """Read one snapshot's inputs. A part that fails is named in ``problems``, not raised."""
    redis, keys, router = services.redis, services.keys, services.router
    now = clock()
    day = day_of(now)
    inp = snapshot.Inputs(now=now, day=day, problems=dict(services.problems))
    rules = router.rules if router is not None else None
    inp.rules = rules
    if router is not None:
        try:
            inp.agents = router.agents_snapshot()
            inp.queues = router.queues_snapshot()
        except redis_lib.RedisError as exc:
            inp.problems["routing"] = f"router state unreadable: {exc}"
    try:
        inp.calls, inp.calls_total = live_calls(redis, keys)
        inp.daily = redis.hgetall(keys.daily_stats(day)) or {}
        inp.rules_state = rules_state(redis, keys)
        inp.tally = tally.refresh(redis, keys, rules, day)
    except redis_lib.RedisError as exc:
        inp.problems["redis"] = f"Redis unreadable: {exc}"
    return inp
