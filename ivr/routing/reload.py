"""Hot reload of the rules and roster, shared by every worker through Redis.

Every ``reload_interval_s`` a worker looks at the two files' modification stamps. A
changed file is parsed and checked: a good edit is put in force at once and published
to ``keys.rules_state()`` (version, loaded-at time, the validated texts) so workers on
other machines adopt it on their next look; a broken edit is refused with file, line
and reason (stored in the same hash as ``refused``), and the last good version stays.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Callable

from ivr.filestamp import stamp as file_stamp
from ivr.keys import Keys
from ivr.routing import rules as rules_mod
from ivr.routing.ledger import _decode
from ivr.routing.rules import Rules, RulesError

log = logging.getLogger(__name__)


class RulesSource:
    """The rules in force for this worker; :meth:`current` re-checks at most every interval."""

    def __init__(self, rules_path: str | Path, agents_path: str | Path, redis, keys: Keys,
                 clock: Callable[[], float], interval_s: float,
                 on_change: Callable[[Rules], None] | None = None):
        self.rules_path, self.agents_path = Path(rules_path), Path(agents_path)
        self.redis, self.keys, self.clock, self.interval_s = redis, keys, clock, interval_s
        self.on_change = on_change
        self.refused: str = ""
        self._checked = float("-inf")
        self._stamps = (file_stamp(self.rules_path), file_stamp(self.agents_path))
        self._rules = self._first_load()

    # -- public ---------------------------------------------------------------------
    def current(self) -> Rules:
        now = self.clock()
        if now - self._checked >= self.interval_s:
            self._checked = now
            try:
                self.refresh()
            except Exception as exc:  # Redis hiccup: keep routing with what we have
                log.warning("rules refresh failed", extra={"reason": str(exc)})
        return self._rules

    def refresh(self) -> None:
        """Adopt a changed file (if good) or a newer shared version; never drop the good one."""
        stamps = (file_stamp(self.rules_path), file_stamp(self.agents_path))
        if stamps != self._stamps:
            self._stamps = stamps
            try:
                fresh = rules_mod.load(self.rules_path, self.agents_path)
            except RulesError as exc:
                self._refuse(str(exc))
                return
            if fresh.version != self._rules.version:
                self._adopt(fresh)
                self._publish(fresh)  # clears the refused edit in Redis too
            else:  # e.g. a refused edit undone: the files are the version in force again
                self._clear_refused()
            self.refused = ""
            return
        version = _decode(self.redis.hget(self.keys.rules_state(), "version"))
        if not version or version == self._rules.version:
            return
        shared = self._shared()
        if shared.get("version") and shared["version"] != self._rules.version:
            try:
                fresh = rules_mod.parse(shared.get("rules_yaml", ""), shared.get("agents_yaml", ""),
                                        f"{self.rules_path} (shared)", f"{self.agents_path} (shared)")
            except RulesError as exc:  # a worker with other code refused what another accepted
                log.error("shared routing rules refused here", extra={"reason": _masked(str(exc))})
                return
            self._adopt(fresh)

    @property
    def rules(self) -> Rules:
        return self._rules

    # -- internals -------------------------------------------------------------------
    def _first_load(self) -> Rules:
        shared = self._shared_safe()
        try:
            local = rules_mod.load(self.rules_path, self.agents_path)
        except RulesError as exc:
            if shared and shared.get("version"):
                self._refuse(str(exc))
                log.error("local routing files refused; using the shared good version", extra={"reason": _masked(str(exc))})
                rules = rules_mod.parse(shared["rules_yaml"], shared["agents_yaml"],
                                        f"{self.rules_path} (shared)", f"{self.agents_path} (shared)")
                self._adopt(rules, initial=True)
                return rules
            raise
        newest_file = max(self.rules_path.stat().st_mtime, self.agents_path.stat().st_mtime)
        if shared and shared.get("version") and shared["version"] != local.version \
                and float(shared.get("loaded_at") or 0) > newest_file:
            # Another machine put a newer edit in force since these files were written.
            try:
                rules = rules_mod.parse(shared["rules_yaml"], shared["agents_yaml"],
                                        f"{self.rules_path} (shared)", f"{self.agents_path} (shared)")
                self._adopt(rules, initial=True)
                return rules
            except RulesError:
                pass
        self._adopt(local, initial=True)
        if not shared or shared.get("version") != local.version:
            self._publish(local)
        return local

    def _adopt(self, rules: Rules, initial: bool = False) -> None:
        self._rules = rules
        if not initial:
            log.info("routing rules reloaded", extra={"version": rules.version})
        if self.on_change:
            self.on_change(rules)

    def _publish(self, rules: Rules) -> None:
        self.redis.hset(self.keys.rules_state(), mapping={
            "version": rules.version, "loaded_at": self.clock(), "rules_yaml": rules.rules_text,
            "agents_yaml": rules.agents_text, "loaded_by": f"{socket.gethostname()}:{os.getpid()}",
            "rules_file": str(self.rules_path), "agents_file": str(self.agents_path), "refused": "",
        })

    def _refuse(self, error: str) -> None:
        self.refused = error
        log.error("routing rules edit refused; keeping the last good version", extra={"reason": _masked(error)})
        try:
            self.redis.hset(self.keys.rules_state(), mapping={"refused": error, "refused_at": self.clock()})
        except Exception:
            pass

    def _clear_refused(self) -> None:
        if self.refused:
            log.info("routing files good again; the refused edit is gone", extra={"version": self._rules.version})
        self.redis.hset(self.keys.rules_state(), mapping={"refused": ""})

    def _shared(self) -> dict:
        return _decode(self.redis.hgetall(self.keys.rules_state())) or {}

    def _shared_safe(self) -> dict:
        try:
            return self._shared()
        except Exception:
            return {}


def _masked(error: str) -> str:
    """A refused edit's reason for the log: the parser quotes the bad value, which may be a
    VIP caller's number written in the wrong form."""
    from ivr.ops.masking import mask

    return mask(error)
