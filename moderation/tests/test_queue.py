"""Finding work in the queue: filters, search, counts, source restriction, keyset pages and
the review SLA."""

import itertools
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from labelers.models import Label
from moderation.filters import QueueFilter
from moderation.models import (
    IN_QUEUE,
    QUEUE_FAILED,
    Decision,
    Item,
    ReviewerSettings,
    queue_key,
    queue_key_ranges,
)
from moderation.selectors.queue import (
    _my_decisions,
    queue_counts,
    queue_filter_q,
    queue_next,
    queue_page,
    queue_sla,
)
from moderation.services.claims import item_claim
from moderation.services.decisions import decision_record
from moderation.services.queue import items_sla_refresh
from moderation.services.verdicts import item_labels_changed, items_routed
from moderation.tests.factories import LabelerFactory, SourceFactory, UserFactory, reason_id

pytestmark = pytest.mark.django_db
# Each queue status's own condition, as the queue's selectors write it.
QUEUE_STATUSES = {"undecided": IN_QUEUE, "failed": QUEUE_FAILED, "escalated": ("escalated",)}

_numbers = itertools.count()


def waiting(source, score=0.5, *, status="flagged", text="", **fields) -> Item:
    """An item that went through labeling to the queue with `score` (or failed/unrouted)."""
    n = next(_numbers)
    item = Item.objects.create(
        source=source,
        external_id=fields.pop("external_id", f"ext-{n}"),
        webhook_id=f"wh-{n}",
        content_text=text or f"item number {n}",
        content_hash=f"hash-{n}",
        status=Item.Status.LABELING,
        **fields,
    )
    if status == "unrouted":
        items_routed(routed=[], unrouted=[item.pk])
    else:
        item_labels_changed(
            item_id=item.pk,
            violation_score=None if status == "failed" else score,
            flagged=status == "flagged",
            labeling=False,
            failed=status == "failed",
        )
    item.refresh_from_db()
    return item


def page_ids(reviewer, **filters) -> list[int]:
    items, _ = queue_page(reviewer=reviewer, filters=QueueFilter(**filters))
    return [item.pk for item in items]


def restrict(user, *sources) -> None:
    settings, _ = ReviewerSettings.objects.get_or_create(user=user)
    settings.sources.set(sources)


@pytest.fixture
def reviewer():
    return UserFactory()


@pytest.fixture
def senior(client):
    user = UserFactory()
    group, _ = Group.objects.get_or_create(name="senior")
    group.permissions.add(Permission.objects.get(codename="review_escalated"))
    user.groups.add(group)
    return user


def test_the_queue_is_sorted_by_score_and_failed_items_sit_at_the_top(source, reviewer):
    low, high = waiting(source, 0.55), waiting(source, 0.91)
    failed, unrouted = waiting(source, status="failed"), waiting(source, status="unrouted")
    assert page_ids(reviewer) == [failed.pk, unrouted.pk, high.pk, low.pk]


def test_the_source_filter_keeps_only_that_sources_items(reviewer):
    forum, shop = SourceFactory(), SourceFactory()
    mine, other = waiting(forum, 0.7), waiting(shop, 0.8)
    assert page_ids(reviewer, source=forum.pk) == [mine.pk]
    assert page_ids(reviewer, source=shop.pk) == [other.pk]


def test_the_labeler_filter_keeps_items_that_labeler_labeled(source, reviewer):
    hate, spam = LabelerFactory(), LabelerFactory()
    by_hate, by_spam = waiting(source, 0.7), waiting(source, 0.8)
    for item, labeler in ((by_hate, hate), (by_spam, spam)):
        Label.objects.create(
            item=item,
            labeler_version=labeler.versions.get(),
            content_hash=item.content_hash,
            status=Label.Status.DONE,
        )
    assert page_ids(reviewer, labeler=hate.pk) == [by_hate.pk]


def test_the_score_range_is_inclusive_and_crosses_bands(source, reviewer):
    items = {score: waiting(source, score) for score in (0.35, 0.4, 0.55, 0.69, 0.7, 0.93)}
    got = page_ids(reviewer, score_min=0.4, score_max=0.7)
    assert got == [items[s].pk for s in (0.7, 0.69, 0.55, 0.4)]
    assert page_ids(reviewer, score_min=0.9) == [items[0.93].pk]
    assert page_ids(reviewer, score_max=0.35) == [items[0.35].pk]


def test_the_received_date_range_takes_whole_utc_days(source, reviewer):
    days = {}
    for day in (1, 2, 3, 4):
        item = waiting(source, 0.6)
        when = datetime(2026, 11, day, 23, 59, tzinfo=UTC)
        Item.objects.filter(pk=item.pk).update(received_at=when)
        days[day] = item.pk
    got = page_ids(reviewer, received_from=date(2026, 11, 2), received_to=date(2026, 11, 3))
    assert sorted(got) == [days[2], days[3]]


def test_the_media_filter_tells_images_videos_and_text_only_apart(source, reviewer):
    image = waiting(source, 0.6, content_image="images/a.png", content_image_type="image/png")
    video = waiting(source, 0.6, content_video="videos/a.mp4", content_video_type="video/mp4")
    text = waiting(source, 0.6)
    assert page_ids(reviewer, media="image") == [image.pk]
    assert page_ids(reviewer, media="video") == [video.pk]
    assert page_ids(reviewer, media="text") == [text.pk]


def test_the_failed_status_shows_failed_and_unrouted_items_only(source, reviewer):
    waiting(source, 0.99)
    failed, unrouted = waiting(source, status="failed"), waiting(source, status="unrouted")
    assert page_ids(reviewer, status="failed") == [failed.pk, unrouted.pk]


def test_the_escalated_status_sorts_escalated_items_like_the_queue(source, reviewer, senior):
    low, high, queued = waiting(source, 0.6), waiting(source, 0.9), waiting(source, 0.95)
    for item in (low, high):
        decision_record(
            item=item, reviewer=reviewer, action="escalate", reason_id=reason_id("escalate")
        )
    assert page_ids(senior, status="escalated") == [high.pk, low.pk]
    assert page_ids(senior) == [queued.pk]


def test_decided_by_me_lists_my_latest_decisions_newest_first(source, reviewer):
    other = UserFactory()
    first, second, theirs, overridden = (waiting(source, 0.7) for _ in range(4))
    decision_record(item=first, reviewer=reviewer, action="approve")
    decision_record(item=second, reviewer=reviewer, action="remove", reason_id=reason_id("remove"))
    decision_record(item=theirs, reviewer=other, action="remove", reason_id=reason_id("remove"))
    decision_record(item=overridden, reviewer=reviewer, action="approve")
    decision_record(item=overridden, reviewer=other, action="remove", reason_id=reason_id("remove"))
    items, _ = queue_page(reviewer=reviewer, filters=QueueFilter(status="mine"))
    assert [i.pk for i in items] == [second.pk, first.pk]
    assert items[0].my_decision.action == "remove"


def test_an_undone_decision_is_not_decided_by_me(source, reviewer):
    item = waiting(source, 0.7)
    decision = decision_record(item=item, reviewer=reviewer, action="approve")
    Decision.objects.create(item=item, reviewer=reviewer, action="undo", undoes=decision)
    assert page_ids(reviewer, status="mine") == []


def test_decided_by_me_pages_by_cursor(source, reviewer):
    items = [waiting(source, 0.7) for _ in range(5)]
    for item in items:
        decision_record(item=item, reviewer=reviewer, action="approve")
    seen, after = [], None
    while True:
        page, after = queue_page(
            reviewer=reviewer, filters=QueueFilter(status="mine"), after=after, size=2
        )
        seen += [i.pk for i in page]
        if after is None:
            break
    assert seen == [i.pk for i in reversed(items)]


def test_search_finds_an_external_id_by_prefix_and_text_in_any_case(source, reviewer):
    by_id = waiting(source, 0.6, external_id="post-12345")
    by_text = waiting(source, 0.7, text="Buy CHEAP watches now")
    waiting(source, 0.8, text="nothing to see", external_id="x-post-1")
    assert page_ids(reviewer, q="post-123") == [by_id.pk]
    assert page_ids(reviewer, q="post-12345") == [by_id.pk]
    assert page_ids(reviewer, q="cheap watch") == [by_text.pk]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="trigram indexes: PostgreSQL")
@pytest.mark.parametrize("status", ["undecided", "failed", "escalated"])
def test_the_search_of_every_queue_can_use_the_partial_trigram_indexes(source, status):
    """The search indexes hold only the statuses searched and edited items (migration
    0028): each queue's search still implies their condition, so the planner can read them."""
    waiting(source, text="dark mode broke")
    items = Item.objects.filter(
        Q(status__in=QUEUE_STATUSES[status]), queue_filter_q(QueueFilter(q="dark"), allowed=None)
    )
    assert_reads_only_the_search_indexes(items.explain)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="trigram indexes: PostgreSQL")
def test_a_search_of_decided_by_me_can_use_the_partial_trigram_indexes(source, reviewer):
    """The "decided by me" search names no status: before 0028 it read every item's text
    (bench/queue.py --mine). It names the indexes' condition now."""
    item = waiting(source, 0.7, text="dark mode broke")
    decision_record(item=item, reviewer=reviewer, action="approve")
    decisions = _my_decisions(
        reviewer=reviewer, filters=QueueFilter(status="mine", q="dark"), allowed=None
    )
    assert [d.item_id for d in decisions] == [item.pk]
    assert_reads_only_the_search_indexes(decisions.explain)


def test_decided_by_me_finds_an_item_edited_since_and_cleared(source, reviewer):
    """An edit takes a decided item out of the searched statuses (a new revision, labeled
    again, here cleared): it is still decided by me, and its search still finds it."""
    item = waiting(source, 0.7, text="dark mode broke", external_id="post-77")
    decision_record(item=item, reviewer=reviewer, action="approve")
    # As items._item_revise and a clean verdict leave it.
    Item.objects.filter(pk=item.pk).update(
        revision=2, status=Item.Status.LABELED, content_text="dark mode fixed", decided_at=None
    )
    assert page_ids(reviewer, status="mine", q="DARK MODE") == [item.pk]
    assert page_ids(reviewer, status="mine", q="post-7") == [item.pk]
    assert page_ids(reviewer, status="mine", q="light") == []


def assert_reads_only_the_search_indexes(explain) -> None:
    """Only the search indexes left to read items by (and, for decisions, their way to
    their item), the rest dropped (rolled back with the test), and plain scans made the last
    resort (of a table, or of a whole index in a tiny test table): a search index whose
    condition the query did not imply could not be read by a bitmap scan, leaving the planner
    nothing but those."""
    with connection.cursor() as cursor:
        for table in (Item._meta.db_table, Decision._meta.db_table):
            others = [
                name
                for name, info in connection.introspection.get_constraints(cursor, table).items()
                if info["index"]
                and not info["primary_key"]
                and "_searchable_idx" not in name
                and info["columns"] != ["item_id"]
            ]
            for name in others:
                cursor.execute(f"DROP INDEX {connection.ops.quote_name(name)}")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
    plan = explain()
    assert "item_text_searchable_idx" in plan and "item_external_id_searchable_idx" in plan, plan


def test_filters_combine(reviewer):
    forum, shop = SourceFactory(), SourceFactory()
    hit = waiting(forum, 0.75, text="a spammy offer", content_image="images/b.png")
    waiting(forum, 0.75, text="a spammy offer")  # no image
    waiting(forum, 0.45, text="a spammy offer", content_image="images/c.png")  # score
    waiting(shop, 0.75, text="a spammy offer", content_image="images/d.png")  # source
    waiting(forum, 0.75, text="kind words", content_image="images/e.png")  # text
    got = page_ids(
        reviewer, source=forum.pk, score_min=0.5, score_max=0.8, media="image", q="SPAMMY"
    )
    assert got == [hit.pk]


def test_a_restricted_reviewer_never_sees_other_sources(reviewer):
    forum, shop = SourceFactory(), SourceFactory()
    allowed, hidden = waiting(forum, 0.6), waiting(shop, 0.99)
    restrict(reviewer, forum)
    assert page_ids(reviewer) == [allowed.pk]
    assert page_ids(reviewer, source=shop.pk) == []
    nxt = queue_next(reviewer=reviewer, filters=QueueFilter())
    assert nxt is not None and nxt.pk == allowed.pk
    assert queue_next(reviewer=reviewer, filters=QueueFilter(source=shop.pk)) is None
    counts = queue_counts(reviewer=reviewer, filters=QueueFilter())
    assert counts["undecided"].n == 1
    assert [row.source for row in queue_sla(reviewer=reviewer)] == [forum]
    decision_record(
        item=hidden, reviewer=UserFactory(), action="escalate", reason_id=reason_id("escalate")
    )
    assert page_ids(reviewer, status="escalated") == []


def test_a_restricted_reviewers_decisions_elsewhere_stay_hidden(reviewer):
    forum, shop = SourceFactory(), SourceFactory()
    item = waiting(shop, 0.6)
    decision_record(item=item, reviewer=reviewer, action="approve")
    restrict(reviewer, forum)
    assert page_ids(reviewer, status="mine") == []


def test_next_passes_over_items_others_hold_and_items_excluded(source, reviewer):
    held, skipped, free = waiting(source, 0.9), waiting(source, 0.8), waiting(source, 0.7)
    item_claim(item=held, reviewer=UserFactory())
    nxt = queue_next(reviewer=reviewer, filters=QueueFilter(), exclude_ids=[skipped.pk])
    assert nxt is not None and nxt.pk == free.pk
    nxt = queue_next(reviewer=reviewer, filters=QueueFilter(score_max=0.75))
    assert nxt is not None and nxt.pk == free.pk


def test_keyset_pages_never_repeat_or_skip_items_with_equal_scores(source, reviewer):
    scores = [0.9, 0.9, 0.9, 0.7, 0.7, 0.7, 0.7, 0.7, 0.5, 0.5, 0.95, 1.0, 0.9, 0.7]
    made = [waiting(source, score) for score in scores] + [waiting(source, status="failed")]
    expected = [item.pk for item in sorted(made, key=lambda i: (-i.queue_score, i.pk))]
    for size in (1, 2, 3, 4, 7):
        seen, after = [], None
        while True:
            page, after = queue_page(
                reviewer=reviewer, filters=QueueFilter(), after=after, size=size
            )
            seen += [i.pk for i in page]
            if after is None:
                break
        assert seen == expected, size


def test_a_mangled_cursor_shows_the_first_page(source, reviewer):
    item = waiting(source, 0.6)
    items, _ = queue_page(reviewer=reviewer, filters=QueueFilter(), after="x_y")
    assert [i.pk for i in items] == [item.pk]


def test_items_past_their_sla_are_marked_and_first_within_their_band(reviewer):
    slow = SourceFactory(review_sla_minutes=60)
    fast = SourceFactory()
    top = waiting(fast, 0.95)
    fresh_better = waiting(slow, 0.79)
    late = waiting(slow, 0.71)
    lower_band = waiting(fast, 0.69)
    old = timezone.now() - timedelta(minutes=61)
    Item.objects.filter(pk=late.pk).update(waiting_since=old)
    assert page_ids(reviewer) == [top.pk, fresh_better.pk, late.pk, lower_band.pk]
    assert items_sla_refresh() == 1
    assert items_sla_refresh() == 0  # nothing more crossed
    late.refresh_from_db()
    assert late.sla_breached
    assert page_ids(reviewer) == [top.pk, late.pk, fresh_better.pk, lower_band.pk]
    row = next(r for r in queue_sla(reviewer=reviewer) if r.source == slow)
    assert (row.waiting.n, row.past_sla.n, row.sla_minutes) == (2, 1, 60)
    assert row.oldest_since == old


def test_an_item_is_unmarked_when_its_sla_is_lengthened_or_removed(reviewer):
    source = SourceFactory(review_sla_minutes=60)
    late, other = waiting(source, 0.71), waiting(source, 0.75)
    Item.objects.filter(pk=late.pk).update(waiting_since=timezone.now() - timedelta(hours=2))
    items_sla_refresh()
    source.review_sla_minutes = None
    source.save()
    assert items_sla_refresh() == 1
    late.refresh_from_db()
    assert not late.sla_breached
    assert page_ids(reviewer) == [other.pk, late.pk]


def test_a_breached_item_keeps_its_place_when_its_score_changes(reviewer):
    source = SourceFactory(review_sla_minutes=60)
    late, fresh = waiting(source, 0.61), waiting(source, 0.65)
    Item.objects.filter(pk=late.pk).update(waiting_since=timezone.now() - timedelta(hours=2))
    items_sla_refresh()
    item_labels_changed(
        item_id=late.pk, violation_score=0.62, flagged=True, labeling=False, failed=False
    )
    assert page_ids(reviewer) == [late.pk, fresh.pk]


def test_the_queue_page_marks_breached_items(client, reviewer):
    source = SourceFactory(review_sla_minutes=30)
    late = waiting(source, 0.7)
    Item.objects.filter(pk=late.pk).update(waiting_since=timezone.now() - timedelta(hours=1))
    items_sla_refresh()
    client.force_login(reviewer)
    page = client.get("/").content.decode()
    assert f'class="queue-row sla-breached" data-item="{late.pk}"' in page
    assert "past SLA" in page and "30 min" in page


def test_counts_per_status_follow_the_other_filters(source, reviewer):
    other = SourceFactory()
    waiting(source, 0.7), waiting(source, 0.8), waiting(source, status="failed")
    waiting(other, 0.9)
    decided = waiting(source, 0.6)
    decision_record(item=decided, reviewer=reviewer, action="approve")
    counts = queue_counts(reviewer=reviewer, filters=QueueFilter(source=source.pk))
    assert {status: count.n for status, count in counts.items()} == {
        "undecided": 3,
        "failed": 1,
        "escalated": 0,
        "mine": 1,
    }
    counts = queue_counts(reviewer=reviewer, filters=QueueFilter(score_min=0.75))
    assert counts["undecided"].n == 3  # 0.8, 0.9 and the failed item's 1.0


def test_counts_stop_at_the_cap(source, reviewer, monkeypatch):
    monkeypatch.setattr("moderation.selectors.queue.QUEUE_COUNT_CAP", 2)
    for _ in range(4):
        waiting(source, 0.7)
    count = queue_counts(reviewer=reviewer, filters=QueueFilter())["undecided"]
    assert count.capped and str(count) == "2+"


def test_the_page_keeps_every_filter_in_its_links(client, reviewer, settings):
    settings.QUEUE_PAGE_SIZE = 1
    source = SourceFactory()
    waiting(source, 0.7, text="spam one"), waiting(source, 0.72, text="spam two")
    client.force_login(reviewer)
    query = f"?source={source.pk}&score_min=0.5&q=spam&media=text"
    page = client.get("/" + query).content.decode()
    start = page.split('id="start-review" href="', 1)[1].split('"', 1)[0]
    assert start.startswith("/queue/next/?")
    for part in (f"source={source.pk}", "score_min=0.5", "q=spam", "media=text"):
        assert part in start
        assert part in re.search(r'href="([^"]*)" id="next-page"', page)[1]


def test_next_keeps_the_filters_on_the_item_and_honours_them(client, reviewer):
    forum, shop = SourceFactory(), SourceFactory()
    waiting(forum, 0.99)
    wanted = waiting(shop, 0.6)
    client.force_login(reviewer)
    response = client.get(f"/queue/next/?source={shop.pk}")
    assert response.status_code == 302
    assert response.url == f"/items/{wanted.pk}/?source={shop.pk}"


def test_a_reviewer_sees_only_their_sources_in_the_dropdowns(client, reviewer):
    forum = SourceFactory(name="Forum visible")
    SourceFactory(name="Shop hidden")
    restrict(reviewer, forum)
    client.force_login(reviewer)
    page = client.get("/").content.decode()
    assert "Forum visible" in page and "Shop hidden" not in page


def test_an_ordinary_reviewer_cannot_open_the_escalated_queue(client, reviewer, senior):
    client.force_login(reviewer)
    assert client.get("/?status=escalated").status_code == 403
    assert 'data-status="escalated"' not in client.get("/").content.decode()
    client.force_login(senior)
    assert client.get("/?status=escalated").status_code == 200


def test_the_key_ranges_of_a_score_filter_hold_exactly_the_scores_in_it():
    scores = [n / 100 for n in range(101)] + [0.005, 0.555, 0.899, 0.901, 0.999]
    bounds = [None, 0.0, 0.1, 0.25, 0.5, 0.55, 0.6, 0.8, 0.85, 0.9, 1.0]
    for low, high in itertools.product(bounds, bounds):
        ranges = queue_key_ranges(low, high)
        for score, breached in itertools.product(scores, (True, False)):
            key = queue_key(score, breached=breached)
            inside = any(start <= key <= end for start, end in ranges)
            wanted = (low is None or score >= low) and (high is None or score <= high)
            assert inside == wanted, (low, high, score, breached)


def test_score_filtered_pages_follow_the_queue_order_across_bands(reviewer):
    source = SourceFactory(review_sla_minutes=60)
    scores = [0.5, 0.55, 0.6, 0.61, 0.65, 0.7, 0.72, 0.79, 0.8, 0.84, 0.85, 0.86, 0.9]
    made = [waiting(source, score) for score in scores * 2]
    late = made[::3]
    Item.objects.filter(pk__in=[i.pk for i in late]).update(
        waiting_since=timezone.now() - timedelta(hours=2)
    )
    items_sla_refresh()
    wanted = [
        item.pk
        for item in sorted(
            made,
            key=lambda i: (-int(i.queue_score * 10 + 1e-9), i not in late, -i.queue_score, i.pk),
        )
        if 0.55 <= item.queue_score <= 0.85
    ]
    seen, after = [], None
    while True:
        page, after = queue_page(
            reviewer=reviewer,
            filters=QueueFilter(score_min=0.55, score_max=0.85),
            after=after,
            size=3,
        )
        seen += [i.pk for i in page]
        if after is None:
            break
    assert seen == wanted
    counts = queue_counts(reviewer=reviewer, filters=QueueFilter(score_min=0.55, score_max=0.85))
    assert counts["undecided"].n == len(wanted)


def test_the_admins_list_of_sources_shows_breaches(admin_client):
    source = SourceFactory(name="Late forum", review_sla_minutes=30)
    late = waiting(source, 0.7)
    Item.objects.filter(pk=late.pk).update(waiting_since=timezone.now() - timedelta(hours=1))
    items_sla_refresh()
    page = admin_client.get("/admin/moderation/source/").content.decode()
    assert "1 past SLA" in page
