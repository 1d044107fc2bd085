"""lib/days: whole UTC days, as the daily figures count them."""

from datetime import UTC, date, datetime, timedelta, timezone

from lib.days import day_chunks, day_runs, day_start, today_start


def test_today_starts_at_midnight_utc_whatever_the_zone_of_now():
    # 01:30 in UTC+5 is still the day before in UTC.
    now = datetime(2026, 12, 2, 1, 30, tzinfo=timezone(timedelta(hours=5)))
    assert today_start(now) == datetime(2026, 12, 1, tzinfo=UTC)
    assert today_start(datetime(2026, 12, 2, 23, 59, 59, tzinfo=UTC)) == day_start(
        date(2026, 12, 2)
    )


def test_today_start_defaults_to_the_present_day():
    start = today_start()
    assert start.tzinfo == UTC
    assert start <= datetime.now(UTC) < start + timedelta(days=1)


def test_consecutive_days_become_runs_and_runs_are_cut_into_chunks():
    days = [date(2026, 1, 3), date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 9)]
    assert day_runs(days) == [
        (date(2026, 1, 1), date(2026, 1, 4)),
        (date(2026, 1, 9), date(2026, 1, 10)),
    ]
    assert list(day_chunks(days, most=2)) == [
        (date(2026, 1, 1), date(2026, 1, 3)),
        (date(2026, 1, 3), date(2026, 1, 4)),
        (date(2026, 1, 9), date(2026, 1, 10)),
    ]
