"""Reads about labels that pages show."""

from __future__ import annotations

from typing import Any

from django.db.models import Count

from labelers.breaker import breaker_status
from labelers.models import Label


def labeling_health() -> dict[str, Any]:
    """Labels that are not done, by status, and whether the circuit breaker holds calls
    back ("breaker"): what reviewers and admins must see is stuck."""
    open_statuses = [s for s in Label.Status.values if s != Label.Status.DONE]
    rows = (
        Label.objects.filter(status__in=open_statuses)
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {**dict(rows), "breaker": breaker_status()}
