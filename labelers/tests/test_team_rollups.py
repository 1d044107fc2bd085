"""The team page (/team/) reads each reviewer's decisions today and over the past 7 days
from the daily counts (labelers/dashboard_rollups.py), like the dashboard: its figures must
be exactly those counted from the rows (reviewer_throughput_raw, team_exposure_raw), before
the task has run and after it; and once days are counted, the page reads those days'
counts, not their decisions."""

import re
from datetime import UTC, timedelta

import pytest
from django.utils import timezone

from labelers import selectors
from labelers.dashboard_rollups import dashboard_rollups_refresh
from labelers.tests.test_dashboard_rollups import constructed
from moderation.models import Decision, MediaReveal
from moderation.selectors.reviewers import team_exposure_raw
from moderation.tests.factories import ItemFactory, UserFactory

pytestmark = pytest.mark.django_db

ROW = re.compile(r"<tr><td>([^<]+)</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td></tr>")


def team_table(client) -> dict[str, tuple[int, int, int]]:
    html = client.get("/team/").content.decode()
    table = html[html.index('<table id="team">') :].split("</table>")[0]
    return {name: tuple(map(int, figures)) for name, *figures in ROW.findall(table)}


def raw_table() -> dict[str, tuple[int, int, int]]:
    """Username -> (decisions today, decisions over the past 7 days, media revealed today),
    every figure counted from the rows."""
    periods = selectors.dashboard_periods()
    found = {
        row["reviewer__username"]: [row["today"], row["week"], 0]
        for row in selectors.reviewer_throughput_raw(periods)
    }
    for row in team_exposure_raw():
        figures = found.setdefault(row["reviewer"], [0, 0, 0])
        assert figures[0] == row["decisions"]  # today's, as the team page counted them
        figures[2] = row["reveals"]
    return {name: tuple(figures) for name, figures in found.items()}


@pytest.mark.parametrize("seed", range(3))
def test_the_team_pages_figures_from_daily_counts_equal_the_rows_counted(client, seed):
    _, reviewers = constructed(seed)
    # Media revealed today by a reviewer who decided things, and by one who decided nothing.
    watcher = UserFactory(username="watcher")
    for user in (reviewers[0], reviewers[0], watcher):
        MediaReveal.objects.create(reviewer=user, item=ItemFactory())
    client.force_login(UserFactory(is_staff=True))
    expected = raw_table()
    assert expected["watcher"] == (0, 0, 1)
    assert sum(week for _, week, _ in expected.values()) > 0
    assert team_table(client) == expected  # nothing counted yet: every day live
    assert dashboard_rollups_refresh() >= 30
    assert team_table(client) == expected  # closed days and today's part from the counts
    # A decision of a counted day (not today) made an undo behind the task's back: the page
    # reads that day's count, not its decisions, so it still shows the decision.
    midnight = timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    counted = Decision.objects.filter(
        reviewer__isnull=False,
        created_at__gte=midnight - timedelta(days=6),
        created_at__lt=midnight,
    ).exclude(action="undo")
    decision = counted.select_related("reviewer").first()
    assert decision is not None
    Decision.objects.filter(pk=decision.pk).update(action="undo")
    assert team_table(client) == expected
    name = decision.reviewer.username
    assert raw_table().get(name, (0, 0, 0))[1] == expected[name][1] - 1
