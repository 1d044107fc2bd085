"""Reads of the figures kept per day (moderation/services/figures.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from lib.days import day_runs, day_start
from moderation.models import ChangedDecidedDay, DecidedRollup, Item
from moderation.services.figures import decided_counts


def decided_under_versions_count(
    *, source_ids: list[int], versions: set[int], now: datetime | None = None
) -> int:
    """How many items of these sources are decided with a current decision made under one
    of `versions`: selectors.decided_under_older_versions' count, from one DecidedRollup
    row per closed day. Decided items not on a counted day (today's, those of a day changed
    since it was counted or not counted yet, any without a decided_at) are read live."""
    if not source_ids or not versions:
        return 0
    today = (now or timezone.now()).astimezone(UTC).date()
    changed = set(ChangedDecidedDay.objects.values_list("day", flat=True))
    sources = set(source_ids)

    def matching(rows) -> int:
        return sum(n for source, under, n in rows if source in sources and versions & set(under))

    stored = dict(DecidedRollup.objects.filter(day__lt=today).values_list("day", "counts"))
    counted = {day: rows for day, rows in stored.items() if day not in changed}
    total = sum(matching(rows) for rows in counted.values())
    first = min(counted, default=today)
    span = [first + timedelta(days=n) for n in range((today - first).days)]
    live = [
        Q(decided_at__isnull=True),
        Q(decided_at__lt=day_start(first)),
        Q(decided_at__gte=day_start(today)),
    ]
    live += [
        Q(decided_at__gte=day_start(a), decided_at__lt=day_start(b))
        for a, b in day_runs(day for day in span if day not in counted)
    ]
    # One statement per range: an OR of ranges made PostgreSQL filter the whole decided_at
    # index (284 ms at 1,000,000 items, bench/admin_pages.py) instead of reading each range.
    for where in live:
        items = Item.objects.filter(where, source_id__in=source_ids)
        total += sum(matching(rows) for rows in decided_counts(items).values())
    return total
