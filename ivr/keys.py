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

    def record_ref(self, sid: str) -> str:
        """String with TTL (the retention): the records stream ID of call ``sid``'s record."""
        return f"{self.prefix}:record:{{{sid}}}"

    def record_amended(self, entry_id: str) -> str:
        """String with TTL (the retention): the amended body of the record at stream ID
        ``entry_id``, read in its place (a stream's entries cannot change)."""
        return f"{self.prefix}:record-amended:{entry_id}"

    def feedback(self) -> str:
        """Stream: agents' category corrections, folded in by `ivr intents train --with-feedback`."""
        return f"{self.prefix}:feedback"

    # --- ops ---------------------------------------------------------------------
    def ops_login(self, login_id: str) -> str:
        """String with TTL (a login's lifetime): one signed-in ops page session; signing out
        deletes it, so a copy of the cookie is good no longer."""
        return f"{self.prefix}:ops:login:{login_id}"

    def ops_channel(self) -> str:
        """Pub/sub channel: live updates for the ops page."""
        return f"{self.prefix}:ops:updates"

    def daily_stats(self, day: str) -> str:
        """Hash: the day's counters (calls, answered, abandoned, ...)."""
        return f"{self.prefix}:stats:{day}"

    def rules_state(self) -> str:
        """Hash: the routing rules/roster in force, when loaded, the last refused edit."""
        return f"{self.prefix}:{{route}}:rules"

    # --- routing (every key shares the {route} tag: one Lua step touches several) ----
    def route_agent_prefix(self) -> str:
        """Prefix of the agent hashes (the RELEASE script appends an agent id to it)."""
        return f"{self.prefix}:{{route}}:agent:"

    def route_agent(self, agent_id: str) -> str:
        """Hash: one agent's live state (state, call, until, hb, idle times, today's counters)."""
        return self.route_agent_prefix() + agent_id

    def route_calls(self) -> str:
        """Hash: sid -> JSON of the calls the router knows (queue, priority, original arrival)."""
        return f"{self.prefix}:{{route}}:calls"

    def route_waiting(self) -> str:
        """Sorted set: waiting sids scored by original arrival (overflow and callback keep it)."""
        return f"{self.prefix}:{{route}}:waiting"

    def route_held(self) -> str:
        """Hash: sid -> the agent reserved for or talking to that call."""
        return f"{self.prefix}:{{route}}:held"

    def route_callbacks(self) -> str:
        """Hash: sid -> when the waiting caller asked to be called back."""
        return f"{self.prefix}:{{route}}:callbacks"

    def route_stats(self) -> str:
        """Hash: queue counters (abandoned:<queue>:<day>)."""
        return f"{self.prefix}:{{route}}:stats"

    def route_handled(self) -> str:
        """List: recent handling times, "<queue>|<seconds>", newest first (expected wait)."""
        return f"{self.prefix}:{{route}}:handled"

    def route_ended(self) -> str:
        """Sorted set: sids whose caller hung up, by time (so a late route() does not queue a ghost)."""
        return f"{self.prefix}:{{route}}:ended"

    def route_sticky(self, caller_hash: str) -> str:
        """String with TTL: the agent a caller (hashed number) last talked to."""
        return f"{self.prefix}:{{route}}:sticky:{caller_hash}"

    # Indexes kept by the same Lua steps that change agent state (so a decision need not
    # read every agent): members of the free sets are "<roster position, 6 digits>:<id>".
    def route_free(self, order: str) -> str:
        """Sorted set: free agents by ``ended`` (last call ended), ``avail`` (last available or
        ended), ``rr`` (last offered) or ``order`` (roster position), or a day index
        (``calls:<day>|ended``: fewest calls / least talk today, then idle): best candidate first."""
        return f"{self.prefix}:{{route}}:free:{order}"

    def route_timers(self) -> str:
        """Sorted set: agent id -> when their reservation, wrap-up or missed-call pause runs out."""
        return f"{self.prefix}:{{route}}:timers"

    def route_presence(self) -> str:
        """Sorted set: agent id -> last heartbeat, for agents whose presence matters (not on a call/offline)."""
        return f"{self.prefix}:{{route}}:presence"

    def route_roster(self) -> str:
        """Hash: agent id -> roster position, for the agents of the roster in force."""
        return f"{self.prefix}:{{route}}:roster"

    def route_eligible(self, version: str, category: str, stage: int) -> str:
        """Set (with a day's TTL): ids of agents who may take a call of ``category`` at relaxation
        ``stage`` under rules ``version`` (plus the member "~" so an empty set still exists)."""
        return f"{self.prefix}:{{route}}:elig:{version}:{category}:{stage}"
