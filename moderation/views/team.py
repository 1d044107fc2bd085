"""For leads and admins: the team's decisions and exposure, golden agreement per reviewer, and
a reviewer's wrong golden answers."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from labelers.selectors import dashboard_periods, team_throughput
from moderation.permissions import (
    reviewer_required,
)
from moderation.selectors.appeals import overturns_by_reviewer
from moderation.selectors.golden import (
    GoldenAgreement,
    golden_agreement,
    golden_wrong_answers,
)


@require_GET
@reviewer_required
def team(request: HttpRequest) -> HttpResponse:
    """For leads and admins: decisions per reviewer today and over the past 7 days (from the
    daily counts, labelers/dashboard_rollups.py: days read, not decisions), media exposure
    today (a wellness signal, not a ranking); golden agreement and appeals overturned."""
    if not request.user.is_staff:
        raise PermissionDenied
    periods = dashboard_periods()
    return render(
        request,
        "moderation/team.html",
        {
            "periods": periods,
            "rows": [
                {
                    "reviewer": row["reviewer__username"],
                    "decisions": [row[p.name] for p in periods],
                    "reveals": row["reveals"],
                }
                for row in team_throughput(periods)
            ],
            "golden": [_with_bars(row) for row in golden_agreement()],
            "overturns": overturns_by_reviewer(),
        },
    )


# The per-week bars of golden agreement on /team/: an inline SVG drawn by the server.
BAR_WIDTH, BAR_GAP, BAR_HEIGHT = 14, 4, 32


def _with_bars(row: GoldenAgreement) -> dict:
    bars = []
    for n, week in enumerate(row.weeks):
        # At least 1 px, so 0 % correct still shows; a week without answers is drawn grey.
        height = max(1, round((week.share or 0) * BAR_HEIGHT))
        bars.append(
            {
                "week": week,
                "x": n * (BAR_WIDTH + BAR_GAP),
                "y": BAR_HEIGHT - height,
                "height": height,
            }
        )
    return {
        "row": row,
        "bars": bars,
        "width": len(bars) * (BAR_WIDTH + BAR_GAP) - BAR_GAP,
        "bar_width": BAR_WIDTH,
        "height": BAR_HEIGHT,
    }


@require_GET
@reviewer_required
def team_golden_wrong(request: HttpRequest, user_id: int) -> HttpResponse:
    """For leads: the golden items a reviewer answered differently from the expected action."""
    if not request.user.is_staff:
        raise PermissionDenied
    reviewer = get_object_or_404(get_user_model(), pk=user_id)
    return render(
        request,
        "moderation/team_golden_wrong.html",
        {"reviewer": reviewer, "answers": golden_wrong_answers(reviewer_id=user_id)},
    )
