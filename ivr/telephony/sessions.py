"""Call sessions in Redis: one hash per call, with a TTL, changed only through ``advance``.

Any worker can serve any request of a call because everything it needs is here. Updates
use WATCH/MULTI so two requests of the same call (a status callback racing the stream,
say) never overwrite each other's changes.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable

import redis as redis_lib

from ivr.calls import Session, advance
from ivr.keys import Keys

LIVE_FIELDS = ("state", "hotline", "language", "partial", "transcript", "category", "confidence",
               "queue", "agent", "reprompts", "started_at", "outcome")


class SessionStore:
    def __init__(self, redis: redis_lib.Redis, keys: Keys, ttl_s: int, clock: Callable[[], float] = time.time):
        self.redis = redis
        self.keys = keys
        self.ttl_s = ttl_s
        self.clock = clock

    def create(self, sid: str, **fields: Any) -> tuple[Session, bool]:
        """Open a session; a retried webhook gets the existing one back (``created`` False)."""
        now = self.clock()
        session = Session(sid=sid, started_at=now, updated_at=now, **fields)
        key = self.keys.call(sid)
        created = bool(self.redis.hsetnx(key, "sid", sid))
        if not created:
            existing = self.get(sid)
            if existing is not None:
                return existing, False
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, mapping=session.to_hash())
        pipe.expire(key, self.ttl_s)
        pipe.zadd(self.keys.live_calls(), {sid: now})
        # A call whose status callback never came would stay "live" forever; its session
        # has expired by now, so its entry in the index goes too.
        pipe.zremrangebyscore(self.keys.live_calls(), "-inf", now - self.ttl_s)
        pipe.execute()
        self._publish(session)
        return session, True

    def get(self, sid: str) -> Session | None:
        data = self.redis.hgetall(self.keys.call(sid))
        if not data or "state" not in data:
            return None
        return Session.from_hash(data)

    def update(self, sid: str, to: str | None = None, when: Callable[[Session], bool] | None = None,
               **changes: Any) -> Session | None:
        """Advance the session (``to`` = its new state, or the same) atomically.

        ``when``: change it only if this holds for the session as it is (else it is returned unchanged)."""
        key = self.keys.call(sid)
        with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)
                    data = pipe.hgetall(key)
                    if not data or "state" not in data:
                        pipe.reset()
                        return None
                    session = Session.from_hash(data)
                    if when is not None and not when(session):
                        pipe.reset()
                        return session
                    was_ended = session.state == "ended"
                    advance(session, to or session.state, self.clock(), **changes)
                    pipe.multi()
                    pipe.hset(key, mapping=session.to_hash())
                    if not was_ended:  # an ended call keeps the short grace its hang-up gave it
                        pipe.expire(key, self.ttl_s)
                    if session.state == "ended":
                        pipe.zrem(self.keys.live_calls(), sid)
                    pipe.execute()
                    break
                except redis_lib.WatchError:
                    continue
        self._publish(session)
        return session

    def set_partial(self, sid: str, text: str) -> None:
        """The live partial transcript (already masked), for the ops page."""
        # only on a session that is still there: a hash made anew would hold nothing but the
        # partial, with no TTL (a stream outliving its call's grace)
        if not self.redis.eval(_SET_IF_THERE, 1, self.keys.call(sid), "partial", text):
            return
        self.redis.publish(self.keys.ops_channel(), json.dumps({"type": "call", "sid": sid, "partial": text},
                                                               ensure_ascii=False))

    def _publish(self, session: Session) -> None:
        body = {"type": "call", "sid": session.sid}
        data = session.to_hash()
        body.update({k: data[k] for k in LIVE_FIELDS})
        try:
            self.redis.publish(self.keys.ops_channel(), json.dumps(body, ensure_ascii=False))
        except redis_lib.RedisError:
            pass  # the live page heals from its periodic snapshot


_SET_IF_THERE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""
