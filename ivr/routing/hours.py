"""Opening hours: weekly time ranges in a time zone, holiday dates, and the clock's day.

Pure functions over the typed schedule; the clock is always passed in (a Unix time), so
tests can pin any moment. ``weekly`` keys are day names (``mon``), day ranges
(``mon-fri``), lists (``sat,sun``) or ``daily``; values are ``HH:MM-HH:MM`` ranges in
local time where the end may be ``24:00``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")


def zone(name: str) -> ZoneInfo:
    """The zone for an IANA name, or ValueError saying what a valid name looks like."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError("an IANA time zone such as Asia/Seoul or Europe/Berlin") from None


def parse_days(key: str) -> list[int]:
    """``mon-fri`` -> [0..4]; ``sat,sun`` -> [5, 6]; ``daily`` -> all seven."""
    key = key.strip().lower()
    if key in ("daily", "every_day", "all"):
        return list(range(7))
    out: list[int] = []
    for part in key.split(","):
        part = part.strip()
        if "-" in part:
            first, _, last = part.partition("-")
            if first not in DAYS or last not in DAYS:
                raise ValueError(f"day names are {', '.join(DAYS)} (ranges like mon-fri) (found {key!r})")
            a, b = DAYS.index(first), DAYS.index(last)
            out.extend(range(a, b + 1) if a <= b else list(range(a, 7)) + list(range(0, b + 1)))
        elif part in DAYS:
            out.append(DAYS.index(part))
        else:
            raise ValueError(f"day names are {', '.join(DAYS)} (ranges like mon-fri, or daily) (found {key!r})")
    return out


def parse_range(text: str) -> tuple[int, int]:
    """``09:00-18:00`` -> minutes since midnight (540, 1080)."""
    m = _RANGE.match(str(text).strip())
    if not m:
        raise ValueError(f"a time range like 09:00-18:00 (found {text!r})")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if h1 > 23 or m1 > 59 or m2 > 59 or end > 24 * 60:
        raise ValueError(f"hours 00-23 and minutes 00-59 (end may be 24:00) (found {text!r})")
    if end <= start:
        raise ValueError(f"the end must be after the start; split a range past midnight into "
                         f"22:00-24:00 and 00:00-06:00 on the next day (found {text!r})")
    return start, end


@dataclass(frozen=True)
class WeekPlan:
    """Open minute ranges per weekday (0 = Monday), a zone, and closed dates."""

    zone_name: str
    ranges: tuple[tuple[tuple[int, int], ...], ...]  # 7 entries
    holidays: frozenset[date]

    def is_open(self, at: float) -> bool:
        local = datetime.fromtimestamp(at, zone(self.zone_name))
        if local.date() in self.holidays:
            return False
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self.ranges[local.weekday()])


def week_plan(zone_name: str, weekly: dict[str, list[str]], holidays: list[date]) -> WeekPlan:
    days: list[list[tuple[int, int]]] = [[] for _ in range(7)]
    for key, ranges in weekly.items():
        for day in parse_days(key):
            days[day].extend(parse_range(r) for r in ranges)
    return WeekPlan(zone_name, tuple(tuple(sorted(d)) for d in days), frozenset(holidays))


_DAYS: dict[str, tuple[int, str]] = {}  # zone -> (the Unix minute last asked about, its local day)


def day_of(at: float, zone_name: str) -> str:
    """The local calendar day (``2025-03-01``) for 'today' counters.

    Remembered per zone for the minute of ``at`` when the zone's offset then is a whole
    number of minutes (every zone's since 1972): its transitions are then on whole minutes
    too, so the local day can only change on a minute boundary."""
    minute = int(at // 60)
    hit = _DAYS.get(zone_name)
    if hit is not None and hit[0] == minute:
        return hit[1]
    local = datetime.fromtimestamp(at, zone(zone_name))
    day = local.date().isoformat()
    offset = local.utcoffset()
    if offset is not None and offset.seconds % 60 == 0 and not offset.microseconds:
        _DAYS[zone_name] = (minute, day)
    return day
