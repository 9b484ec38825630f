"""Every Redis key the hotline writes, in one place.

Per-call keys carry the call SID as a hash tag (``{CA…}``) so that everything one call
touches lives in one Redis Cluster slot; the router's keys share the ``{route}`` tag
because one atomic routing step touches agents and queues together. Every per-call key
gets a TTL (``calls.session_ttl_s``) where it is written.
"""

from __future__ import annotations


class Keys:
    def __init__(self, prefix: str = "ivr"):
        self.prefix = prefix

    # --- calls -------------------------------------------------------------------
    def call(self, sid: str) -> str:
        """Hash: the call session (state, hotline, transcript, category, ...)."""
        return f"{self.prefix}:call:{{{sid}}}"

    def call_events(self, sid: str) -> str:
        """Stream: what happened on this call, in order (for the record and the ops page)."""
        return f"{self.prefix}:call:{{{sid}}}:events"

    def webhook_seen(self, sid: str, key: str) -> str:
        """String: the answer already given to a retried webhook (idempotency)."""
        return f"{self.prefix}:call:{{{sid}}}:seen:{key}"

    def live_calls(self) -> str:
        """Sorted set: SIDs of calls in progress, scored by start time."""
        return f"{self.prefix}:calls:live"

    # --- records and learning ------------------------------------------------------
    def records(self) -> str:
        """Stream: one entry per finished call (masked), trimmed by retention."""
        return f"{self.prefix}:records"

    def feedback(self) -> str:
        """Stream: agents' category corrections, folded in by `ivr intents train --with-feedback`."""
        return f"{self.prefix}:feedback"

    # --- ops ---------------------------------------------------------------------
    def ops_channel(self) -> str:
        """Pub/sub channel: live updates for the ops page."""
        return f"{self.prefix}:ops:updates"

    def daily_stats(self, day: str) -> str:
        """Hash: the day's counters (calls, answered, abandoned, ...)."""
        return f"{self.prefix}:stats:{day}"

    def rules_state(self) -> str:
        """Hash: the routing rules/roster in force, when loaded, the last refused edit."""
        return f"{self.prefix}:{{route}}:rules"
