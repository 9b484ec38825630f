"""Opening hours and holidays, with a clock the test controls."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from ivr.routing import hours


def at(text: str, zone: str = "Asia/Seoul") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


def test_week_plan_is_open_inside_ranges_in_its_own_time_zone():
    plan = hours.week_plan("Europe/Berlin", {"mon-fri": ["09:00-12:00", "13:00-17:00"]}, [date(2026, 4, 3)])
    assert plan.is_open(at("2026-03-02T09:00", "Europe/Berlin"))
    assert not plan.is_open(at("2026-03-02T12:30", "Europe/Berlin"))
    assert not plan.is_open(at("2026-03-02T17:00", "Europe/Berlin"))
    # 09:30 in Seoul on a Monday is 01:30 in Berlin: closed there
    assert not plan.is_open(at("2026-03-02T09:30", "Asia/Seoul"))
    assert not plan.is_open(at("2026-03-07T10:00", "Europe/Berlin"))  # Saturday
    assert not plan.is_open(at("2026-04-03T10:00", "Europe/Berlin"))  # holiday (a Friday)


def test_day_ranges_wrap_and_24_00_ends_the_day():
    plan = hours.week_plan("UTC", {"fri-mon": ["00:00-24:00"]}, [])
    assert plan.is_open(at("2026-03-08T23:59", "UTC"))  # Sunday
    assert not plan.is_open(at("2026-03-04T12:00", "UTC"))  # Wednesday


def test_router_answers_closed_with_the_callers_language_after_hours(build, mk, clock):
    router = build(rules=mk.rules_with(**{"agents.heartbeat_timeout_s": 0}))
    assert router.route(mk.call("CA1", "complaint")).kind == "agent"  # Monday 10:00 Seoul
    clock.now = at("2026-03-02T19:00")
    d = router.route(mk.call("CA2", "complaint", language="ko"))
    assert (d.kind, d.queue, d.message) == ("closed", "complaints", "지금은 상담 시간이 아닙니다.")
    assert router.route(mk.call("CA3", "complaint", language="en-US")).message == "We are closed."
    assert router.route(mk.call("CA4", "human")).kind == "agent"  # the general queue has no hours


def test_router_is_closed_on_a_holiday_and_open_the_next_day(build, mk, clock):
    router = build(rules=mk.rules_with(**{"agents.heartbeat_timeout_s": 0}))
    clock.now = at("2026-03-03T11:00")  # Tuesday, a holiday in the rules
    assert router.route(mk.call("CA1", "complaint")).kind == "closed"
    clock.now = at("2026-03-04T11:00")
    assert router.route(mk.call("CA2", "complaint")).kind == "agent"


def test_after_hours_number_is_given_when_configured(build, mk, clock):
    router = build(rules=mk.rules_with(**{"hours.business.closed_number": "+15005550199"}))
    clock.now = at("2026-03-07T11:00")  # Saturday
    d = router.route(mk.call("CA1", "complaint"))
    assert d.kind == "closed" and d.fallback_number == "+15005550199"


def test_today_counters_use_the_rules_time_zone():
    # 2026-03-02 23:30 UTC is already 2026-03-03 in Seoul
    assert hours.day_of(at("2026-03-02T23:30", "UTC"), "Asia/Seoul") == "2026-03-03"


def test_day_of_is_the_local_day_at_every_second_around_midnights_and_clock_changes():
    """day_of remembers the day for the minute asked about: never the wrong day for any zone."""
    moments = [("Asia/Seoul", "2026-03-03T00:00"), ("Asia/Kathmandu", "2026-03-03T00:00"),
               ("Europe/Berlin", "2026-03-29T02:00"), ("Europe/Berlin", "2026-10-25T03:00"),
               ("Australia/Lord_Howe", "2026-04-05T02:00"), ("America/Santiago", "2026-04-05T00:00"),
               ("America/Sao_Paulo", "2018-11-04T00:00"),  # the clocks went forward at midnight
               ("Africa/Monrovia", "1960-01-01T00:00")]  # an offset of -0:44:30 then
    for name, text in moments:
        zone = ZoneInfo(name)
        centre = datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()
        for step in range(-7300, 7300, 7):
            t = centre + step + 0.25
            assert hours.day_of(t, name) == datetime.fromtimestamp(t, zone).date().isoformat(), (name, t)
