"""Routing rules and the agent roster: YAML that ops edit, parsed into typed objects and
checked for meaning (unknown queue or skill, overflow cycles, a category nobody on the
roster can serve, malformed hours). Every problem names file, line and key.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from ivr import yamlfile
from ivr.routing import hours as hours_mod

STRATEGIES = ("longest_idle", "fewest_calls", "least_talk_time", "round_robin", "fixed_order")
# The call flow sends unsure callers to these; the rules must route them.
REQUIRED_CATEGORIES = ("human", "out_of_scope")
_ADDRESS = re.compile(r"^(client:[A-Za-z0-9_.@-]+|sip:\S+@\S+|\+[1-9]\d{6,14})$")
E164_PATTERN = re.compile(r"^\+[1-9]\d{6,14}$")
_NAME = r"^[a-z0-9_]+$"


class RulesError(yamlfile.YamlFileError):
    """Rules or roster refused; ``str()`` is one ``file:line: key: reason`` per problem."""


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _levels(value):
    # skills may be written [a, b] (level 1 each) or {a: 3, b: 1}
    if isinstance(value, list):
        out = {}
        for item in value:
            if not isinstance(item, str):
                raise ValueError(f"skill names, or a mapping skill: level (found {yamlfile.describe(item)})")
            out[item] = 1
        return out
    return value


class Relax(Model):
    after_s: float = Field(gt=0)       # once the caller has waited this long ...
    lower_by: int = Field(ge=1, le=9)  # ... every minimum level drops by this much (never below 1)


class Overflow(Model):
    after_s: float = Field(gt=0)
    to: str


def _e164(v: str) -> str:
    if not E164_PATTERN.match(v):
        raise ValueError("an E.164 number like +821012345678 (+, country code, number; no spaces or dashes)")
    return v


# Validated per item, so a bad number is reported at its own line.
E164 = Annotated[str, AfterValidator(_e164)]


class AfterMaxWait(Model):
    action: Literal["callback", "fallback"] = "fallback"
    number: E164 | None = None          # for fallback: where to transfer (default: config fallback.dial)
    message: str | dict[str, str] = ""  # what the caller hears; a mapping gives one text per language


class Queue(Model):
    skills: dict[str, int] = Field(default_factory=dict)
    relax: list[Relax] = Field(default_factory=list)
    strategy: Literal[STRATEGIES] = "longest_idle"  # type: ignore[valid-type]
    wrap_up_s: float = Field(30, ge=0, le=3600)
    hours: str | None = None
    overflow: Overflow | None = None
    max_wait_s: float | None = Field(None, gt=0)
    after_max_wait: AfterMaxWait = AfterMaxWait()
    default_handle_s: float = Field(180, gt=0)
    service_level_s: float = Field(60, gt=0)

    _skills = field_validator("skills", mode="before")(classmethod(lambda cls, v: _levels(v)))

    @field_validator("skills")
    @classmethod
    def _level_range(cls, v):
        for name, level in v.items():
            if not 1 <= level <= 9:
                raise ValueError(f"skill levels from 1 to 9 (found {name}: {level})")
        return v

    @field_validator("relax")
    @classmethod
    def _ascending(cls, v):
        times = [step.after_s for step in v]
        if times != sorted(times):
            raise ValueError(f"relax steps in order of after_s (found {times})")
        return v


class Category(Model):
    queue: str
    priority: int = Field(0, ge=0, le=100)
    skills: dict[str, int] = Field(default_factory=dict)
    promise_s: float | None = Field(None, gt=0)  # answer-within target shown on the live page

    _skills = field_validator("skills", mode="before")(classmethod(lambda cls, v: _levels(v)))


class Schedule(Model):
    timezone: str | None = None
    weekly: dict[str, list[str]]
    holidays: list[date] = Field(default_factory=list)
    closed_message: str | dict[str, str] = ""
    closed_number: E164 | None = None

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v):
        if v is not None:
            hours_mod.zone(v)
        return v

    @field_validator("weekly")
    @classmethod
    def _weekly(cls, v):
        for key, ranges in v.items():
            hours_mod.parse_days(key)
            for r in ranges:
                hours_mod.parse_range(r)
        return v


class AgentPolicy(Model):
    heartbeat_timeout_s: float = Field(60, ge=0)     # 0 = presence not tracked
    reservation_timeout_s: float = Field(45, gt=0)
    missed_pause_s: float = Field(30, ge=0)
    max_missed: int = Field(3, ge=1)


class Vip(Model):
    priority_boost: int = Field(10, ge=0, le=100)
    # Twilio sends the caller's number as E.164 ("From"): anything else would never match.
    numbers: list[E164] = Field(default_factory=list)


class Sticky(Model):
    within_hours: float = Field(24, ge=0)  # 0 = off


class RulesFile(Model):
    timezone: str = "UTC"
    idle_since: Literal["last_call_ended", "last_available"] = "last_call_ended"
    default_category: str = "out_of_scope"
    skills: list[str]
    agents: AgentPolicy = AgentPolicy()
    vip: Vip = Vip()
    sticky: Sticky = Sticky()
    hours: dict[str, Schedule] = Field(default_factory=dict)
    categories: dict[str, Category]
    queues: dict[str, Queue]

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v):
        hours_mod.zone(v)
        return v


class Agent(Model):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    name: str
    address: str
    skills: dict[str, int]

    _skills = field_validator("skills", mode="before")(classmethod(lambda cls, v: _levels(v)))

    @field_validator("address")
    @classmethod
    def _address(cls, v):
        if not _ADDRESS.match(v):
            raise ValueError("client:NAME, sip:user@host or an E.164 number like +821012345678")
        return v


class RosterFile(Model):
    agents: list[Agent] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self):
        ids = [a.id for a in self.agents]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"agent ids must be unique, repeated: {', '.join(dupes)}")
        return self


@dataclass(frozen=True)
class Rules:
    """Rules and roster that passed every check, plus the version they are known by."""

    rules: RulesFile
    roster: RosterFile
    version: str
    rules_text: str
    agents_text: str

    @cached_property
    def agents_by_id(self) -> dict[str, Agent]:
        return {a.id: a for a in self.roster.agents}

    @cached_property
    def order_of(self) -> dict[str, int]:
        """Position in agents.yaml (fixed_order strategy and every tie-break)."""
        return {a.id: i for i, a in enumerate(self.roster.agents)}

    @cached_property
    def memo(self) -> dict:
        """Scratch space for answers that depend only on these rules (see selection)."""
        return {}

    def agent(self, agent_id: str) -> Agent | None:
        return self.agents_by_id.get(agent_id)

    def category(self, name: str) -> tuple[str, Category]:
        """The category's rule; unknown categories use ``default_category``."""
        if name in self.rules.categories:
            return name, self.rules.categories[name]
        fallback = self.rules.default_category
        return fallback, self.rules.categories[fallback]

    @cached_property
    def vip_numbers(self) -> frozenset[str]:
        return frozenset(self.rules.vip.numbers)

    @cached_property
    def _plans(self) -> dict[str, hours_mod.WeekPlan | None]:
        out = {}
        for queue in self.rules.queues:
            s = self.schedule(queue)
            out[queue] = None if s is None else hours_mod.week_plan(s.timezone or self.rules.timezone, s.weekly,
                                                                    s.holidays)
        return out

    def schedule(self, queue: str) -> Schedule | None:
        name = self.rules.queues[queue].hours
        return self.rules.hours[name] if name else None

    def plan(self, queue: str) -> hours_mod.WeekPlan | None:
        """The queue's opening hours (built once per rules version), or None if always open."""
        return self._plans[queue]

    def chain(self, queue: str) -> tuple[tuple[str, float], ...]:
        """The queue and its overflow queues with the wait (s) at which each is reached."""
        return self._chains[queue]

    @cached_property
    def _chains(self) -> dict[str, tuple[tuple[str, float], ...]]:
        # asked for every waiting call at every poll: worked out once per rules version
        out = {}
        for queue in self.rules.queues:
            steps, at = [(queue, 0.0)], 0.0
            q = self.rules.queues[queue]
            while q.overflow is not None and q.overflow.to in self.rules.queues \
                    and all(name != q.overflow.to for name, _ in steps):
                at += q.overflow.after_s
                steps.append((q.overflow.to, at))
                q = self.rules.queues[q.overflow.to]
            out[queue] = tuple(steps)
        return out


def check(rules: RulesFile, roster: RosterFile, rdoc: yamlfile.YamlDocument,
          adoc: yamlfile.YamlDocument) -> list[yamlfile.Problem]:
    """Meaning checks across both files; each problem points at the offending line."""
    from ivr.routing.selection import can_serve, relaxed

    problems: list[yamlfile.Problem] = []
    known = set(rules.skills)
    known_list = ", ".join(rules.skills)

    def skills_known(doc, loc, skills):
        for name in skills:
            if name not in known:
                problems.append(doc.problem(loc, f"unknown skill {name!r}: declare it under skills: (known: {known_list})"))

    for name, q in rules.queues.items():
        skills_known(rdoc, ("queues", name, "skills"), q.skills)
        if q.hours and q.hours not in rules.hours:
            problems.append(rdoc.problem(("queues", name, "hours"),
                                         f"unknown hours {q.hours!r}: define it under hours: (have {', '.join(rules.hours) or 'none'})"))
        if q.overflow and q.overflow.to not in rules.queues:
            problems.append(rdoc.problem(("queues", name, "overflow", "to"),
                                         f"unknown queue {q.overflow.to!r} (queues: {', '.join(rules.queues)})"))
    for name in rules.queues:  # overflow cycles
        seen, cur = [name], rules.queues[name]
        while cur.overflow and cur.overflow.to in rules.queues:
            nxt = cur.overflow.to
            if nxt in seen:
                if nxt == name:
                    problems.append(rdoc.problem(("queues", name, "overflow", "to"),
                                                 f"overflow cycle {' -> '.join(seen + [nxt])}: one queue in the loop must not overflow"))
                break
            seen.append(nxt)
            cur = rules.queues[nxt]
    for name in REQUIRED_CATEGORIES + (rules.default_category,):
        if name not in rules.categories:
            problems.append(rdoc.problem(("categories",),
                                         f"category {name!r} is missing: the call flow sends unsure callers there; map it to a general queue"))
    for i, agent in enumerate(roster.agents):
        skills_known(adoc, ("agents", i, "skills"), agent.skills)
    if problems:
        return problems
    for name, cat in rules.categories.items():
        if cat.queue not in rules.queues:
            problems.append(rdoc.problem(("categories", name, "queue"),
                                         f"unknown queue {cat.queue!r} (queues: {', '.join(rules.queues)})"))
            continue
        skills_known(rdoc, ("categories", name, "skills"), cat.skills)
    if problems:
        return problems
    draft = Rules(rules, roster, "", "", "")
    for name, cat in rules.categories.items():
        servable = False
        for qname, _ in draft.chain(cat.queue):
            need = relaxed(draft, name, qname, wait_s=float("inf"))
            if any(can_serve(a.skills, need) for a in roster.agents):
                servable = True
                break
        if not servable:
            need = relaxed(draft, name, cat.queue, wait_s=float("inf"))
            problems.append(rdoc.problem(("categories", name),
                                         f"nobody on the roster ({adoc.file}) can serve this category even at the most "
                                         f"relaxed step (needs {need}): give an agent these skills or overflow the queue"))
    return problems


def parse(rules_text: str, agents_text: str, rules_file: str = "rules.yaml", agents_file: str = "agents.yaml") -> Rules:
    """Typed, checked rules from the two files' text; raises :class:`RulesError`."""
    problems: list[yamlfile.Problem] = []
    rules = roster = None
    rdoc = adoc = None
    for text, file, model, slot in ((rules_text, rules_file, RulesFile, "r"), (agents_text, agents_file, RosterFile, "a")):
        try:
            doc = yamlfile.parse_text(text, file)
            obj = yamlfile.validate(model, doc)
        except yamlfile.YamlFileError as exc:
            problems.extend(exc.problems)
            continue
        if slot == "r":
            rules, rdoc = obj, doc
        else:
            roster, adoc = obj, doc
    if problems:
        raise RulesError(problems)
    problems = check(rules, roster, rdoc, adoc)
    if problems:
        raise RulesError(problems)
    version = hashlib.sha256((rules_text + "\0" + agents_text).encode()).hexdigest()[:16]
    return Rules(rules, roster, version, rules_text, agents_text)


def read_text(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RulesError([yamlfile.Problem(str(path), None, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError([yamlfile.Problem(str(path), None, "", f"cannot read: {exc}")]) from None


# How long an offered agent's phone rings before the offer counts as missed (the call flow's
# <Dial timeout>), and what a reservation should leave beyond it for the answer to arrive.
AGENT_RING_S = 20
ANSWER_MARGIN_S = 5


def advice(rules: Rules) -> list[str]:
    """Settings that pass the checks but work against the callers (said by ``rules check``)."""
    out = []
    timeout = rules.rules.agents.reservation_timeout_s
    if timeout < AGENT_RING_S + ANSWER_MARGIN_S:
        out.append(f"agents.reservation_timeout_s is {timeout:g} s, but an offered agent's phone rings for up to "
                   f"{AGENT_RING_S} s: an offer then lapses while the phone still rings, and the call, back in line, holds "
                   f"another agent meanwhile (set it to at least {AGENT_RING_S + ANSWER_MARGIN_S} s)")
    return out


def load(rules_path: str | Path, agents_path: str | Path) -> Rules:
    """Read and check both files; raises :class:`RulesError` naming file, line and reason."""
    return parse(read_text(rules_path), read_text(agents_path), str(rules_path), str(agents_path))
