"""Reads about labels that pages show."""

from __future__ import annotations

from django.db.models import Count

from labelers.models import Label


def labeling_health() -> dict[str, int]:
    """Labels that are not done, by status: what reviewers and admins must see is stuck."""
    open_statuses = [s for s in Label.Status.values if s != Label.Status.DONE]
    rows = (
        Label.objects.filter(status__in=open_statuses)
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    return dict(rows)
