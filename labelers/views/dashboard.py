"""The admins' system-wide dashboard (/manage/): items, labels, decisions and callbacks today
and over the past week, the queue per source, label failures, reviewers; every figure links
to the list behind it.

Staff only. Server-rendered; no inline script or style (the site's CSP forbids both)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.db.models import Max, QuerySet
from django.db.models.functions import TruncDate
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html_join
from django.views.decorators.http import require_GET

from labelers import selectors
from labelers.dashboard_chart import Chart, bars_chart
from labelers.dashboard_rollups import DayFigures, Figures
from lib.days import day_start
from moderation.models import IN_QUEUE, Item, QueueSnapshot, Source
from moderation.permissions import staff_required
from moderation.selectors.queue import queues_figures, sources_sla
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

# Days of the charts, today the last.
CHART_DAYS = 30


def _queue_peaks_query(first_day: date) -> QuerySet:
    """(day, source id, waiting, oldest) rows: the highest hourly snapshot's waiting items
    and oldest wait (seconds) each day: one grouped read of at most 24 rows per source and
    day."""
    return (
        QueueSnapshot.objects.filter(hour__gte=day_start(first_day))
        .annotate(day=TruncDate("hour", tzinfo=UTC))
        .values_list("day", "source_id")
        .annotate(waiting=Max("waiting"), oldest=Max("oldest_wait"))
        .order_by()
    )


def _source_charts(
    slas: list, figures: Figures, days: list[date], now: datetime, peak_rows: list
) -> list[dict[str, Any]]:
    """Per source, its 30 days: three charts (items received and flag rate, decisions by
    people and by the system, queue depth and oldest wait) and their figures as a table.
    `peak_rows`: _queue_peaks_query's."""
    peaks = {(day, source_id): (waiting, oldest) for day, source_id, waiting, oldest in peak_rows}
    today = days[-1]
    found = []
    for sla in slas:
        source = sla.source
        rows = []
        for day in days:
            counts = figures.get((day, source.pk), DayFigures())
            waiting, oldest = peaks.get((day, source.pk), (None, None))
            if day == today:  # the queue as it stands counts for today too
                live_oldest = (
                    int((now - sla.oldest_since).total_seconds()) if sla.oldest_since else None
                )
                waiting = max(waiting or 0, sla.waiting.n)
                oldest = max(filter(None, (oldest, live_oldest)), default=oldest)
            rows.append(
                {
                    "day": day,
                    "received": counts.received,
                    "flagged": counts.flagged,
                    "flag_rate": counts.flag_rate,
                    "people": counts.decided_by_people,
                    "system": counts.decided_automatically,
                    "waiting": waiting,
                    "oldest_hours": None if oldest is None else oldest / 3600,
                }
            )

        def column(name: str, rows: list[dict[str, Any]] = rows) -> list:
            return [row[name] for row in rows]

        charts: list[Chart] = [
            bars_chart(
                "Items received and flag rate",
                days,
                [("items received", "chart-bar", column("received"))],
                line=("flag rate", column("flag_rate"), 1.0, "{:.0%}"),
            ),
            bars_chart(
                "Decisions",
                days,
                [
                    ("by people", "chart-bar", column("people")),
                    ("by the system", "chart-bar-alt", column("system")),
                ],
            ),
            bars_chart(
                "Queue",
                days,
                [("items waiting (hourly peak)", "chart-bar", [w or 0 for w in column("waiting")])],
                line=("oldest wait", column("oldest_hours"), None, "{:.1f} h"),
            ),
        ]
        # The table's cells as text, formatted once here and escaped into rows: 240 template
        # variables per source cost more than the page's SQL.
        table = [
            [
                str(row["day"]),
                str(row["received"]),
                str(row["flagged"]),
                "–" if row["flag_rate"] is None else f"{row['flag_rate']:.0%}",
                str(row["people"]),
                str(row["system"]),
                "–" if row["waiting"] is None else str(row["waiting"]),
                "–" if row["oldest_hours"] is None else f"{row['oldest_hours']:.1f} h",
            ]
            for row in rows
        ]
        table_rows = format_html_join(
            "\n",
            '<tr><th scope="row">{}</th>' + '<td class="num">{}</td>' * 7 + "</tr>",
            table,
        )
        found.append({"source": source, "charts": charts, "table_rows": table_rows})
    return found


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
    now = timezone.now()
    today = now.astimezone(UTC).date()
    chart_days = [today - timedelta(days=n) for n in range(CHART_DAYS - 1, -1, -1)]
    # Every figure of the past 30 days, read once: daily counts and today's rows.
    figures = selectors.dashboard_figures(periods, first_day=chart_days[0])
    activity = selectors.dashboard_activity(periods, figures)
    activity_rows = [
        (label, [(activity[key][p.name], link(p)) for p in periods])
        for key, label, link in _ACTIVITY
    ]
    # The other figures, the queue's daily peaks and the reviewers' names, in one round trip.
    counts = selectors.dashboard_counts(
        _queue_peaks_query(chart_days[0]),
        *([selectors.reviewer_names_query(figures)] if figures is not None else []),
    )
    # The caller's own reads, in the order given: the peaks, then the names (with figures).
    peak_rows, *name_rows = counts.extra
    names = dict(name_rows[0]) if name_rows else None
    special = counts.special
    slas = sources_sla(list(Source.objects.order_by("name")))
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
        for sla in slas
    ]
    health = counts.health
    label_failures = [
        (label, health.get(status, 0), _admin_list("labelers_label", status__exact=status))
        for status, label in _LABEL_FAILURES
    ]
    callbacks = counts.callbacks
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
                    )
                    # Revealed media but decided nothing in the period: no list behind it.
                    if row["reviewer_id"] is not None
                    else "",
                )
                for p in periods
            ],
            "reveals": row["reveals"],
        }
        for row in selectors.team_throughput(periods, figures, counts.reveals, names)
    ]
    return render(
        request,
        "labelers/dashboard.html",
        {
            "periods": periods,
            "activity_rows": activity_rows,
            "chart_days": chart_days,
            "source_charts": (
                _source_charts(slas, figures, chart_days, now, peak_rows)
                if figures is not None
                else []
            ),
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
            "bank_rows": counts.banks,
            "reviewer_rows": reviewer_rows,
        },
    )
