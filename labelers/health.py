"""What the labeling pipeline adds to the machine probes (lib/health.py, listed in settings):
the readiness check that beat's dispatch runs, and the database's state for /metrics."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from labelers.models import DispatchHeartbeat, Label
from moderation.models import IN_QUEUE, Item


def check_dispatcher() -> str | None:
    """Beat's sweep ran recently: without it nothing is labeled, however healthy the web."""
    ran_at = DispatchHeartbeat.objects.filter(pk=1).values_list("ran_at", flat=True).first()
    if ran_at is None:
        return "the dispatcher has never run"
    age = (timezone.now() - ran_at).total_seconds()
    if age > settings.LABEL_DISPATCH_STALL_SECONDS:
        return f"the dispatcher last ran {age:.0f} s ago"
    return None


class DatabaseStateCollector:
    """What the database knows, read at scrape time (a few grouped queries on indexed
    columns): the review queue per source, items not yet routed, open labels, and how long
    ago beat's dispatch ran. Shared by every process, so exported once, by the web."""

    def collect(self):
        now = timezone.now()
        depth = GaugeMetricFamily(
            "modqueue_review_queue_items",
            "Undecided items waiting for a reviewer",
            labels=["source"],
        )
        oldest = GaugeMetricFamily(
            "modqueue_review_queue_oldest_seconds",
            "Age of the oldest item waiting for a reviewer (since it was received)",
            labels=["source"],
        )
        rows = (
            Item.objects.filter(status__in=IN_QUEUE)
            .values_list("source__slug")
            .annotate(n=Count("id"), first=Min("received_at"))
            .order_by()
        )
        for slug, count, first in rows:
            depth.add_metric([slug], count)
            oldest.add_metric([slug], (now - first).total_seconds())
        yield depth
        yield oldest
        received = Item.objects.filter(status=Item.Status.RECEIVED).aggregate(
            n=Count("id"), first=Min("received_at")
        )
        yield GaugeMetricFamily(
            "modqueue_items_unrouted", "Items received, not yet given labels", value=received["n"]
        )
        yield GaugeMetricFamily(
            "modqueue_items_unrouted_oldest_seconds",
            "Age of the oldest item not yet given labels (0: none)",
            value=(now - received["first"]).total_seconds() if received["first"] else 0,
        )
        open_labels = GaugeMetricFamily(
            "modqueue_labels_open", "Labels not done, by status", labels=["status"]
        )
        finished = (Label.Status.DONE, Label.Status.SUPERSEDED)
        counts = dict(
            Label.objects.exclude(status__in=finished)
            .values_list("status")
            .annotate(n=Count("id"))
            .order_by()
        )
        for status in Label.Status.values:
            if status not in finished:
                open_labels.add_metric([status], counts.get(status, 0))
        yield open_labels
        ran_at = DispatchHeartbeat.objects.filter(pk=1).values_list("ran_at", flat=True).first()
        yield GaugeMetricFamily(
            "modqueue_dispatcher_lag_seconds",
            "Seconds since beat's dispatch last ran (-1: never)",
            value=(now - ran_at).total_seconds() if ran_at else -1,
        )
