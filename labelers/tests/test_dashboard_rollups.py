"""The dashboard reads closed days from their daily counts (labelers/dashboard_rollups.py):
its figures must be exactly those counted from the rows (dashboard_activity_raw,
reviewer_throughput_raw, and per source and day a plain Python count of every row), before
the task has run, after it, and after an edit cleared the flag of an item flagged on a day
already counted. Then the 30 days per source as charts with their tables, and the queue's
hourly snapshots."""

import random
import re
from collections import Counter
from datetime import UTC, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from labelers import selectors
from labelers.dashboard_chart import bars_chart
from labelers.dashboard_rollups import daily_figures, dashboard_rollups_refresh
from labelers.models import DashboardRollup, Label
from moderation.intake import IntakePayload
from moderation.models import ChangedFlaggedDay, Decision, Item, QueueSnapshot
from moderation.services.figures import queue_snapshot_take
from moderation.services.items import item_ingest
from moderation.tests.factories import ItemFactory, SourceFactory, UserFactory

pytestmark = pytest.mark.django_db


def constructed(seed: int):
    """Items over the past 40 days and today in two sources: received, some labeled (done
    or failed), some flagged (on their day or a later one), decisions by three reviewers
    and by the system, undos; at random moments of each day, midnight included."""
    rng = random.Random(seed)
    now = timezone.now()
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    sources = [SourceFactory(name="Forum"), SourceFactory(name="Chat")]
    reviewers = [UserFactory(username=f"r{n}") for n in range(3)]
    for back in range(40, -1, -1):
        day = midnight - timedelta(days=back)
        for _ in range(rng.randint(0, 5)):
            limit = (now - day).total_seconds() if back == 0 else 86_399
            at = day + timedelta(seconds=rng.choice([0, rng.uniform(0, limit)]))
            item = ItemFactory(source=rng.choice(sources), status=Item.Status.LABELED)
            fields = {"received_at": at}
            if rng.random() < 0.5:
                fields["flagged_at"] = min(now, at + timedelta(hours=rng.choice([0, 1, 30])))
            Item.objects.filter(pk=item.pk).update(**fields)
            for revision in range(1, rng.randint(1, 3)):  # one label per revision
                Label.objects.create(
                    revision=revision,
                    item=item,
                    labeler_version=item.source.labelers.get().versions.get(),
                    status=rng.choice([Label.Status.DONE, Label.Status.DONE, Label.Status.FAILED]),
                    content_hash=item.content_hash,
                    labeled_at=min(now, at + timedelta(minutes=rng.choice([0, 5, 2000]))),
                )
            for _ in range(rng.randint(0, 3)):
                reviewer = rng.choice([None, *reviewers])
                action = rng.choice(["approve", "remove", "escalate", "undo"])
                decision = Decision.objects.create(item=item, reviewer=reviewer, action=action)
                when = min(now, at + timedelta(hours=rng.choice([0, 3, 50])))
                Decision.objects.filter(pk=decision.pk).update(created_at=when)
    return sources, reviewers


def python_counts(first_day) -> dict:
    """(day, source id) -> the figures, from every row read into Python."""
    found: dict = {}

    def at(when, source_id):
        day = when.astimezone(UTC).date()
        return found.setdefault((day, source_id), Counter()) if day >= first_day else Counter()

    for item in Item.objects.all():
        at(item.received_at, item.source_id)["received"] += 1
        if item.flagged_at:
            at(item.flagged_at, item.source_id)["flagged"] += 1
    for label in Label.objects.filter(status="done").select_related("item"):
        at(label.labeled_at, label.item.source_id)["labeled"] += 1
    for decision in Decision.objects.exclude(action="undo").select_related("item"):
        counts = at(decision.created_at, decision.item.source_id)
        if decision.reviewer_id is None:
            counts["decided_automatically"] += 1
        else:
            counts["decided_by_people"] += 1
            counts[f"reviewer {decision.reviewer_id}"] += 1
    return {key: +counts for key, counts in found.items() if +counts}


def as_counters(figures) -> dict:
    found = {}
    for (day, source_id), f in figures.items():
        counts = Counter(
            received=f.received,
            flagged=f.flagged,
            decided_by_people=f.decided_by_people,
            decided_automatically=f.decided_automatically,
        )
        counts.update({f"reviewer {k}": v for k, v in f.reviewers.items()})
        found[(day, source_id)] = counts
    return found


def assert_same_as_raw() -> None:
    periods = selectors.dashboard_periods()
    assert selectors.dashboard_activity(periods) == selectors.dashboard_activity_raw(periods)
    assert selectors.reviewer_throughput(periods) == selectors.reviewer_throughput_raw(periods)
    first_day = periods[1].start.date() - timedelta(days=30)
    figures = daily_figures(first_day)
    expected = python_counts(first_day)
    # Labels counted live carry no source (the charts do not show them): compare their
    # totals per day, and everything else per source and day.
    labeled: Counter = Counter()
    for (day, _), counts in expected.items():
        labeled[day] += counts.pop("labeled", 0)
    got_labeled: Counter = Counter()
    for (day, _), f in figures.items():
        got_labeled[day] += f.labeled
    assert +got_labeled == +labeled
    got = {key: +counts for key, counts in as_counters(figures).items() if +counts}
    assert got == {key: counts for key, counts in expected.items() if counts}


@pytest.mark.parametrize("seed", range(3))
def test_figures_from_daily_counts_equal_the_rows_counted(seed):
    constructed(seed)
    assert_same_as_raw()  # nothing counted yet: every day live
    counted = dashboard_rollups_refresh()  # from the first item's day to yesterday
    assert counted >= 30
    # A row per source and day, zeros too; today's partial ones among them.
    assert DashboardRollup.objects.filter(through__isnull=True).count() == 2 * counted
    assert DashboardRollup.objects.filter(through__isnull=False).count() == 2
    assert_same_as_raw()
    assert dashboard_rollups_refresh() == 0  # nothing new: nothing recounted


def test_an_edit_that_clears_a_flag_of_a_counted_day_is_counted_again():
    sources, _ = constructed(11)
    dashboard_rollups_refresh()
    before = selectors.dashboard_activity(selectors.dashboard_periods())
    today = timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    flagged = Item.objects.filter(
        flagged_at__lt=today, flagged_at__gte=today - timedelta(days=6)
    ).first()
    assert flagged is not None
    # The product sends the item again with new content: an edit, its flag cleared.
    payload = IntakePayload(external_id=flagged.external_id, content_text="edited text")
    _, accepted = item_ingest(source=flagged.source, payload=payload, webhook_id="edit-1")
    assert accepted
    flagged.refresh_from_db()
    assert flagged.flagged_at is None
    assert ChangedFlaggedDay.objects.count() == 1
    after = selectors.dashboard_activity(selectors.dashboard_periods())
    assert after["flagged"]["week"] == before["flagged"]["week"] - 1  # at once (live)...
    assert_same_as_raw()
    assert dashboard_rollups_refresh() == 1  # ...and the task recounts that day only
    assert not ChangedFlaggedDay.objects.exists()
    assert_same_as_raw()


def test_a_day_is_counted_once_it_is_over_and_its_late_commits_are_in():
    constructed(5)
    midnight = timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    yesterday = (midnight - timedelta(days=1)).date()
    dashboard_rollups_refresh(now=midnight + timedelta(minutes=5))
    # Yesterday only until 23:50 (its last minutes may still commit), as today is counted.
    throughs = set(DashboardRollup.objects.filter(day=yesterday).values_list("through", flat=True))
    assert throughs == {midnight - timedelta(minutes=10)}
    assert not DashboardRollup.objects.filter(day=midnight.date()).exists()
    assert_same_as_raw()
    dashboard_rollups_refresh(now=midnight + timedelta(minutes=20))
    assert set(DashboardRollup.objects.filter(day=yesterday).values_list("through", flat=True)) == {
        None
    }
    assert set(
        DashboardRollup.objects.filter(day=midnight.date()).values_list("through", flat=True)
    ) == {midnight + timedelta(minutes=5)}
    assert_same_as_raw()


def test_today_is_read_from_its_partial_count_and_the_rows_stored_since():
    sources, reviewers = constructed(8)
    now = timezone.now()
    through = now - timedelta(minutes=15)
    # Flagged a moment before the partial count's end: in it (near midnight, yesterday's).
    flagged = ItemFactory(source=sources[1])
    Item.objects.filter(pk=flagged.pk).update(
        received_at=through - timedelta(seconds=2), flagged_at=through - timedelta(seconds=1)
    )
    dashboard_rollups_refresh(now=now)
    day = through.astimezone(UTC).date()
    assert set(DashboardRollup.objects.filter(day=day).values_list("through", flat=True)) == {
        through
    }
    assert_same_as_raw()
    # Rows stored after the partial count, and ones stored before it but committed after
    # it (inside the grace, after `through`): all counted.
    for when in (now + timedelta(seconds=1), now - timedelta(minutes=5), through):
        item = ItemFactory(source=sources[0])
        Item.objects.filter(pk=item.pk).update(received_at=when, flagged_at=when)
        Decision.objects.filter(
            pk=Decision.objects.create(item=item, reviewer=reviewers[0], action="remove").pk
        ).update(created_at=when)
    before = selectors.dashboard_activity(selectors.dashboard_periods())
    assert_same_as_raw()
    # An edit clears a flag counted in the partial row: that day is counted from its rows
    # until the task has counted it again.
    payload = IntakePayload(external_id=flagged.external_id, content_text="edited today")
    item_ingest(source=flagged.source, payload=payload, webhook_id="edit-today")
    assert ChangedFlaggedDay.objects.get().day == day
    after = selectors.dashboard_activity(selectors.dashboard_periods())
    assert after["flagged"]["week"] == before["flagged"]["week"] - 1
    assert_same_as_raw()
    dashboard_rollups_refresh()
    assert not ChangedFlaggedDay.objects.exists()
    assert_same_as_raw()


def test_the_queue_snapshot_keeps_each_sources_queue_of_the_hour():
    busy, calm = SourceFactory(name="Busy"), SourceFactory(name="Calm")
    now = timezone.now()
    old = ItemFactory(source=busy, sla_breached=True)
    Item.objects.filter(pk=old.pk).update(waiting_since=now - timedelta(hours=5))
    ItemFactory(source=busy)
    ItemFactory(source=busy, status=Item.Status.DECIDED)
    assert queue_snapshot_take(now=now) == 2
    assert queue_snapshot_take(now=now + timedelta(seconds=1)) == 2  # the same hour: updated
    rows = {s.source_id: s for s in QueueSnapshot.objects.all()}
    assert len(rows) == 2
    assert (rows[busy.pk].waiting, rows[busy.pk].past_sla) == (2, 1)
    assert 5 * 3600 <= rows[busy.pk].oldest_wait <= 5 * 3600 + 5
    assert (rows[calm.pk].waiting, rows[calm.pk].oldest_wait) == (0, None)


def trends(page: str, source) -> str:
    found = re.search(
        rf'<div class="source-trends" data-source="{source.pk}">.*?</details>', page, re.S
    )
    assert found, f"no charts for {source}"
    return found.group(0)


def test_the_dashboard_charts_30_days_per_source_with_their_figures_as_a_table(client):
    sources, _ = constructed(2)
    dashboard_rollups_refresh()
    # Yesterday's queue at its peak, two hourly snapshots.
    midnight = timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    forum = sources[0]
    for hour, waiting in ((3, 7), (9, 12)):
        QueueSnapshot.objects.create(
            hour=midnight - timedelta(hours=24 - hour),
            source=forum,
            waiting=waiting,
            oldest_wait=hour * 3600,
            taken_at=midnight - timedelta(hours=24 - hour),
        )
    client.force_login(UserFactory(is_staff=True))
    page = client.get(reverse("manage_dashboard")).content.decode()
    figures = daily_figures((midnight - timedelta(days=29)).date())
    for source in sources:
        block = trends(page, source)
        assert block.count('role="img"') == 3
        assert len(re.findall(r'aria-label="[^"]*\d{4}-\d\d-\d\d to \d{4}-\d\d-\d\d', block)) == 3
        rows = re.findall(r"<tr><th scope=\"row\">(\d{4}-\d\d-\d\d)</th>(.*?)</tr>", block, re.S)
        assert len(rows) == 30
        assert rows[-1][0] == str(midnight.date())
        for day, cells in rows:
            numbers = re.findall(r'<td class="num">([^<]*)</td>', cells)
            f = figures.get((timezone.datetime.fromisoformat(day).date(), source.pk))
            received = f.received if f else 0
            people = f.decided_by_people if f else 0
            assert (numbers[0], numbers[3]) == (str(received), str(people)), day
    yesterday = str((midnight - timedelta(days=1)).date())
    row = re.search(rf"<th scope=\"row\">{yesterday}</th>(.*?)</tr>", trends(page, forum), re.S)
    cells = re.findall(r'<td class="num">([^<]*)</td>', row.group(1))
    assert cells[-2:] == ["12", "9.0 h"]  # the day's peaks
    assert "script" not in trends(page, forum) and "style=" not in trends(page, forum)


def test_a_chart_stays_inside_its_box_and_says_what_it_shows():
    days = [timezone.now().date() - timedelta(days=n) for n in (2, 1, 0)]
    chart = bars_chart(
        "Items received and flag rate",
        days,
        [("items received", "chart-bar", [4, 0, 2])],
        line=("flag rate", [0.5, None, 2.0], 1.0, "{:.0%}"),
    )
    assert [(r.y, r.height) for r in chart.rects] == [("0", "80"), ("40", "40")]
    ys = [float(point.split(",")[1]) for point in chart.line.split()]
    assert ys == [60.0, 0.0]  # 200 % is the top: a rate above 100 % stays inside
    assert chart.summary.endswith(
        "items received per day (bars, highest 4); flag rate (line, 0 to 200%)"
    )
    stacked = bars_chart(
        "Decisions",
        days,
        [("by people", "chart-bar", [1, 1, 0]), ("by the system", "chart-bar-alt", [1, 0, 0])],
    )
    assert [r.kind for r in stacked.rects] == ["chart-bar", "chart-bar-alt", "chart-bar"]
    assert "by people (light) and by the system (dark)" in stacked.summary
