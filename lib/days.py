"""Whole UTC days, as the daily figures (rollups) count them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta

from django.utils import timezone


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def today_start(now: datetime | None = None) -> datetime:
    """Midnight UTC of `now` (by default, of the present moment): where "today" begins for
    every daily figure, whatever the site's time zone."""
    now = now if now is not None else timezone.now()
    return day_start(now.astimezone(UTC).date())


def day_runs(days: Iterable[date]) -> list[tuple[date, date]]:
    """Consecutive days as [first, after-last) ranges."""
    runs: list[tuple[date, date]] = []
    for day in sorted(days):
        if runs and runs[-1][1] == day:
            runs[-1] = (runs[-1][0], day + timedelta(days=1))
        else:
            runs.append((day, day + timedelta(days=1)))
    return runs


def days_from(first: date, stop: date) -> set[date]:
    """Every day from `first` up to, not including, `stop`."""
    return {first + timedelta(days=n) for n in range((stop - first).days)}


def day_chunks(days: Iterable[date], most: int) -> Iterator[tuple[date, date]]:
    """day_runs, each cut into [first, after-last) ranges of at most `most` days: what one
    counting statement takes when a rollup task catches up."""
    for start, end in day_runs(days):
        while start < end:
            stop = min(end, start + timedelta(days=most))
            yield start, stop
            start = stop
