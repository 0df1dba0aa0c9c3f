"""Business-time arithmetic: add working minutes to an instant, count working minutes between
two instants, in a workspace's time zone with weekly intervals and holiday dates.

Wall-clock intervals are resolved per local date, so a DST change shortens or lengthens the
working day exactly as a clock on the office wall would.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

MAX_SEARCH_DAYS = 3 * 366  # a calendar with no working time at all must not loop forever


class NoBusinessHours(ValueError):
    """The calendar has no working time within the search horizon."""


@dataclass(frozen=True)
class Interval:
    day: int  # 0 = Monday … 6 = Sunday (ISO weekday - 1)
    start: time
    end: time  # exclusive; time(0, 0) as end means midnight at the end of the day

    def __post_init__(self) -> None:
        if not 0 <= self.day <= 6:
            raise ValueError("day must be 0 (Monday) to 6 (Sunday)")
        if self.end != time(0, 0) and self.end <= self.start:
            raise ValueError("an interval must end after it starts")


@dataclass(frozen=True)
class Calendar:
    timezone: str
    intervals: tuple[Interval, ...]
    holidays: frozenset[date] = field(default_factory=frozenset)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def always_open(cls) -> Calendar:
        """24/7: business time equals elapsed time."""
        return cls("UTC", tuple(Interval(d, time(0, 0), time(0, 0)) for d in range(7)))

    def windows(self, day: date) -> list[tuple[int, int]]:
        """The working windows of one local date as Unix-second pairs, in order."""
        if day in self.holidays:
            return []
        zone = self.zone
        result = []
        for interval in sorted(
            (i for i in self.intervals if i.day == day.weekday()), key=lambda i: i.start
        ):
            start = datetime.combine(day, interval.start, zone)
            end_day = day + timedelta(days=1) if interval.end == time(0, 0) else day
            end = datetime.combine(end_day, interval.end, zone)
            start_ts, end_ts = _unix(start), _unix(end)
            if end_ts > start_ts:
                result.append((start_ts, end_ts))
        return _merge(result)

    def _windows_from(self, moment: int) -> Iterator[tuple[int, int]]:
        """Working windows that end after `moment`, clipped to start no earlier than it."""
        day = datetime.fromtimestamp(moment, self.zone).date() - timedelta(days=1)
        for offset in range(MAX_SEARCH_DAYS):
            for start, end in self.windows(day + timedelta(days=offset)):
                if end > moment:
                    yield max(start, moment), end
        raise NoBusinessHours("no working time in the calendar")

    def add(self, moment: int, seconds: int) -> int:
        """The instant `seconds` of working time after `moment`."""
        remaining = seconds
        for start, end in self._windows_from(moment):
            if remaining <= end - start:
                return start + remaining
            remaining -= end - start
        raise NoBusinessHours("no working time in the calendar")  # pragma: no cover

    def between(self, start: int, end: int) -> int:
        """Working seconds in [start, end)."""
        if end <= start:
            return 0
        total = 0
        for window_start, window_end in self._windows_from(start):
            if window_start >= end:
                break
            total += min(window_end, end) - window_start
        return total

    def is_open(self, moment: int) -> bool:
        return self.between(moment, moment + 1) == 1


def _unix(moment: datetime) -> int:
    """Unix seconds of a zone-aware wall time (fold=0: the first of an ambiguous hour)."""
    return int(moment.timestamp())


def _merge(windows: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in windows:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def parse_clock(value: str) -> time:
    """`"09:00"` → time(9, 0); `"24:00"` means the end of the day."""
    if value == "24:00":
        return time(0, 0)
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))
