"""Reads about labels that pages show."""

from __future__ import annotations

from typing import Any

from django.db.models import Count

from labelers.breaker import breaker_status
from labelers.models import Label
from labelers.services import source_routing


def labeling_health() -> dict[str, Any]:
    """Labels that are not done, by status, and whether the circuit breaker holds calls
    back ("breaker"): what reviewers and admins must see is stuck."""
    finished = (Label.Status.DONE, Label.Status.SUPERSEDED)
    open_statuses = [s for s in Label.Status.values if s not in finished]
    rows = (
        Label.objects.filter(status__in=open_statuses)
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {**dict(rows), "breaker": breaker_status()}


def source_routing_problem(source_id: int) -> str:
    """Why the source's items would reach no labeler, in words; empty when routing works."""
    if not source_routing(source_id):
        return (
            "no active labeler with a version is routed to this source: its items go to "
            "review unlabeled"
        )
    return ""
