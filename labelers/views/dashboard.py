"""The admins' system-wide dashboard (/manage/): items, labels, decisions and callbacks today
and over the past week, the queue per source, label failures, reviewers; every figure links
to the list behind it.

Staff only. Server-rendered; no inline script or style (the site's CSP forbids both)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from labelers import selectors
from moderation.models import IN_QUEUE, Item, Source
from moderation.permissions import staff_required
from moderation.selectors.banks import banks_savings
from moderation.selectors.queue import queues_figures, sources_sla
from moderation.selectors.reviewers import team_exposure
from moderation.selectors.routing import routing_queues


def _admin_list(model: str, **params: Any) -> str:
    """An admin changelist ("app_model") with these filters: the list behind a figure."""
    return f"{reverse(f'admin:{model}_changelist')}?{urlencode(params)}"


def _dated(field: str, period: selectors.Period) -> dict[str, str]:
    # The very values the admin's date filter links use, so its sidebar shows the choice.
    return {f"{field}__gte": str(period.start), f"{field}__lt": str(period.end)}


# What a decision counts as on the dashboard: not an undo.
_DECISION_ACTIONS = "approve,remove,escalate"

# The dashboard's activity figures: (key in dashboard_activity, label, the list behind it).
_ACTIVITY = [
    (
        "received",
        "Items received",
        lambda p: _admin_list("moderation_item", **_dated("received_at", p)),
    ),
    (
        "labeled",
        "Labels given",
        lambda p: _admin_list("labelers_label", status__exact="done", **_dated("labeled_at", p)),
    ),
    (
        "flagged",
        "Items flagged",
        lambda p: _admin_list("moderation_item", **_dated("flagged_at", p)),
    ),
    (
        "decided_by_people",
        "Decisions by reviewers",
        lambda p: _admin_list(
            "moderation_decision",
            reviewer__isnull="False",
            action__in=_DECISION_ACTIONS,
            **_dated("created_at", p),
        ),
    ),
    (
        "decided_automatically",
        "Automatic decisions",
        lambda p: _admin_list(
            "moderation_decision",
            reviewer__isnull="True",
            action__in=_DECISION_ACTIONS,
            **_dated("created_at", p),
        ),
    ),
]

# Label statuses (Label.Status) that are failures, by kind.
_LABEL_FAILURES = [
    ("waiting_key", "Waiting for the API key"),
    ("failed", "Refused (needs a person)"),
    ("failed_transient", "Transient (will retry)"),
]


@require_GET
@staff_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """One page for admins: activity today and over the past 7 days, the queue per source,
    label and callback failures, reviewers' throughput and exposure; each figure links to
    the list behind it. A fixed number of queries, each a count over an index range."""
    periods = selectors.dashboard_periods()
    activity = selectors.dashboard_activity(periods)
    activity_rows = [
        (label, [(activity[key][p.name], link(p)) for p in periods])
        for key, label, link in _ACTIVITY
    ]
    special = selectors.waiting_by_source_and_status()
    in_queue = ",".join(IN_QUEUE)
    source_rows = [
        {
            "sla": sla,
            "queue_url": f"{reverse('queue')}?source={sla.source.pk}",
            "past_sla_url": _admin_list(
                "moderation_item",
                source__id__exact=sla.source.pk,
                sla_breached__exact=1,
                status__in=in_queue,
            ),
            "special": [
                (
                    special.get((sla.source.pk, status), 0),
                    _admin_list(
                        "moderation_item", source__id__exact=sla.source.pk, status__exact=status
                    ),
                )
                for status in selectors.SPECIAL_QUEUE_STATUSES
            ],
        }
        for sla in sources_sla(list(Source.objects.order_by("name")))
    ]
    health = selectors.labeling_health()
    label_failures = [
        (label, health.get(status, 0), _admin_list("labelers_label", status__exact=status))
        for status, label in _LABEL_FAILURES
    ]
    callbacks = selectors.callbacks_by_state()
    callback_rows = [
        (
            "Failed (given up)",
            callbacks["failed"],
            _admin_list("moderation_callbackdelivery", state__exact="failed"),
        ),
        (
            "Still to send",
            callbacks["pending"] + callbacks["sending"],
            _admin_list("moderation_callbackdelivery", state__in="pending,sending"),
        ),
    ]
    reveals = {row["reviewer"]: row["reveals"] for row in team_exposure() if row["reviewer"]}
    reviewer_rows = [
        {
            "username": row["reviewer__username"],
            "figures": [
                (
                    row[p.name],
                    _admin_list(
                        "moderation_decision",
                        reviewer__id__exact=row["reviewer_id"],
                        action__in=_DECISION_ACTIONS,
                        **_dated("created_at", p),
                    ),
                )
                for p in periods
            ],
            "reveals": reveals.pop(row["reviewer__username"], 0),
        }
        for row in selectors.reviewer_throughput(periods)
    ]
    # Reviewers who revealed media today but decided nothing in the period: exposure all
    # the same.
    reviewer_rows += [
        {"username": name, "figures": [(0, "") for _ in periods], "reveals": n}
        for name, n in sorted(reveals.items())
    ]
    return render(
        request,
        "labelers/dashboard.html",
        {
            "periods": periods,
            "activity_rows": activity_rows,
            "source_rows": source_rows,
            # Each team queue's waiting, oldest and past-SLA figures.
            "queue_rows": [
                {"figures": figures, "queue_url": reverse("queue") + f"?queue={figures.queue.pk}"}
                for figures in queues_figures(list(routing_queues()))
            ],
            "special_labels": [Item.Status(s).label for s in selectors.SPECIAL_QUEUE_STATUSES],
            "received_waiting": health.get("received", 0),
            "label_failures": label_failures,
            "breaker": health["breaker"],
            "callback_rows": callback_rows,
            "bank_rows": banks_savings(),
            "reviewer_rows": reviewer_rows,
        },
    )
