from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from enque.sla.business_hours import Calendar, Interval, NoBusinessHours, parse_clock

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def ts(zone: ZoneInfo, *parts: int) -> int:
    return int(datetime(*parts, tzinfo=zone).timestamp())


def weekdays(tz: str, start: str = "09:00", end: str = "17:00", holidays=()) -> Calendar:
    intervals = tuple(Interval(d, parse_clock(start), parse_clock(end)) for d in range(5))
    return Calendar(tz, intervals, frozenset(holidays))


def test_within_one_day():
    cal = weekdays("Europe/Berlin")
    monday_10 = ts(BERLIN, 2026, 11, 23, 10, 0)
    assert cal.add(monday_10, 60 * 60) == ts(BERLIN, 2026, 11, 23, 11, 0)


def test_before_opening_starts_at_opening():
    cal = weekdays("Europe/Berlin")
    monday_7 = ts(BERLIN, 2026, 11, 23, 7, 0)
    assert cal.add(monday_7, 30 * 60) == ts(BERLIN, 2026, 11, 23, 9, 30)


def test_rolls_over_the_weekend():
    cal = weekdays("Europe/Berlin")
    friday_16 = ts(BERLIN, 2026, 11, 27, 16, 0)
    # one hour left on Friday, three more on Monday
    assert cal.add(friday_16, 4 * 3600) == ts(BERLIN, 2026, 11, 30, 12, 0)
    assert cal.between(friday_16, ts(BERLIN, 2026, 11, 30, 12, 0)) == 4 * 3600


def test_skips_holidays():
    cal = weekdays("Europe/Berlin", holidays=[date(2026, 12, 25)])
    thursday_17 = ts(BERLIN, 2026, 12, 24, 17, 0)
    # Friday 25 is a holiday, then the weekend
    assert cal.add(thursday_17, 3600) == ts(BERLIN, 2026, 12, 28, 10, 0)


def test_spring_forward_keeps_wall_clock_hours():
    # US DST starts Sunday 2026-03-08; a 7-day calendar 09:00–17:00 keeps 8 h on that day
    cal = Calendar("America/New_York", tuple(Interval(d, time(9), time(17)) for d in range(7)))
    saturday_16 = ts(NEW_YORK, 2026, 3, 7, 16, 0)
    assert cal.add(saturday_16, 2 * 3600) == ts(NEW_YORK, 2026, 3, 8, 10, 0)


def test_overnight_interval_across_dst_change_is_an_hour_shorter():
    # a night shift 00:00–06:00 on the spring-forward day lasts 5 real hours in Berlin
    cal = Calendar("Europe/Berlin", (Interval(6, time(0), time(6)),))
    sunday = ts(BERLIN, 2026, 3, 29, 0, 0)
    assert cal.between(sunday, sunday + 24 * 3600) == 5 * 3600


def test_fall_back_night_is_an_hour_longer():
    cal = Calendar("Europe/Berlin", (Interval(6, time(0), time(6)),))
    sunday = ts(BERLIN, 2026, 10, 25, 0, 0)
    assert cal.between(sunday, sunday + 26 * 3600) == 7 * 3600


def test_several_intervals_a_day():
    cal = Calendar(
        "UTC",
        (Interval(0, time(9), time(12)), Interval(0, time(13), time(17))),
    )
    monday_11 = int(datetime(2026, 11, 23, 11, tzinfo=ZoneInfo("UTC")).timestamp())
    assert cal.add(monday_11, 2 * 3600) == monday_11 + 3 * 3600  # lunch skipped


def test_midnight_end_and_always_open():
    cal = Calendar.always_open()
    moment = 1_800_000_000
    assert cal.add(moment, 12345) == moment + 12345
    assert cal.between(moment, moment + 99999) == 99999


def test_is_open():
    cal = weekdays("Europe/Berlin")
    assert cal.is_open(ts(BERLIN, 2026, 11, 23, 9, 0))
    assert not cal.is_open(ts(BERLIN, 2026, 11, 23, 17, 0))
    assert not cal.is_open(ts(BERLIN, 2026, 11, 28, 12, 0))  # Saturday


def test_between_is_inverse_of_add():
    cal = weekdays("America/New_York", holidays=[date(2026, 11, 26)])
    start = ts(NEW_YORK, 2026, 11, 20, 15, 17)
    for minutes in (1, 59, 480, 481, 5000, 20000):
        end = cal.add(start, minutes * 60)
        assert cal.between(start, end) == minutes * 60


def test_empty_calendar_raises():
    with pytest.raises(NoBusinessHours):
        Calendar("UTC", ()).add(0, 60)


def test_invalid_interval_rejected():
    with pytest.raises(ValueError):
        Interval(7, time(9), time(17))
    with pytest.raises(ValueError):
        Interval(0, time(17), time(9))
