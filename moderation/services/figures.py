"""Figures kept per day (labelers/quality/rollups.py) are counted once a day is over; an
item whose decisions or flag change later makes the days of its labels stale. This is the
one door through which moderation says so: a small insert, in the caller's transaction (a
rolled-back decision leaves nothing stale)."""

from __future__ import annotations

from moderation.models import ChangedItem


def item_figures_changed(*, item_id: int) -> None:
    ChangedItem.objects.create(item_id=item_id)
