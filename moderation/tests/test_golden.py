"""Golden items: admins mark decided items with the expected action; a share of each
reviewer's "next" items are golden, shown as ordinary queue items; answers are scored and
shown to leads only, and never touch the item, its decisions or its product."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from moderation.errors import AlreadyAnswered, NotAllowed
from moderation.filters import QueueFilter
from moderation.models import (
    CallbackDelivery,
    Decision,
    DecisionReason,
    GoldenAnswer,
    GoldenItem,
    Item,
    ReviewerSettings,
)
from moderation.selectors.decisions import decisions_by
from moderation.selectors.golden import (
    GOLDEN_OPEN_FOR,
    golden_agreement,
    golden_answer_open,
    golden_due,
    golden_next,
    golden_share,
    golden_shown_status,
    golden_wrong_answers,
)
from moderation.services.decisions import decision_record, decision_undo
from moderation.services.golden import (
    golden_answer_record,
    golden_answer_serve,
    golden_answer_skip,
    golden_item_mark,
    golden_item_unmark,
)
from moderation.tests.factories import ItemFactory, SourceFactory, UserFactory, reason_id

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_user(db):
    return UserFactory(is_staff=True, is_superuser=True, reviewer=False)


def decided(action="approve", *, by=None, **item_fields) -> Item:
    """An item decided by someone (a fresh reviewer unless `by`)."""
    item = ItemFactory(**item_fields)
    reason = reason_id(action) if action != "approve" else None
    decision_record(item=item, reviewer=by or UserFactory(), action=action, reason_id=reason)
    item.refresh_from_db()
    return item


def golden(expected="approve", **item_fields) -> GoldenItem:
    item = decided(expected, **item_fields)
    return golden_item_mark(item=item, expected_action=expected, created_by=None)


def share(user, value: float | None) -> None:
    ReviewerSettings.objects.update_or_create(user=user, defaults={"golden_share": value})


def answer(user, gold: GoldenItem, action: str, *, at: datetime | None = None) -> GoldenAnswer:
    served = golden_answer_serve(golden=gold, reviewer=user)
    reason = reason_id(action) if action != "approve" else None
    recorded = golden_answer_record(answer=served, reviewer=user, action=action, reason_id=reason)
    if at is not None:
        GoldenAnswer.objects.filter(pk=recorded.pk).update(answered_at=at)
    return recorded


# --- Marking ---------------------------------------------------------------------------------


def test_only_decided_items_can_be_marked_golden(admin_user):
    waiting = ItemFactory()
    with pytest.raises(ValueError, match="only decided items"):
        golden_item_mark(item=waiting, expected_action="approve", created_by=admin_user)
    escalated = decided("escalate")
    with pytest.raises(ValueError, match="only decided items"):
        golden_item_mark(item=escalated, expected_action="remove", created_by=admin_user)
    assert not GoldenItem.objects.exists()


def test_a_decided_item_is_marked_at_its_current_revision(admin_user):
    item = decided("remove")
    Item.objects.filter(pk=item.pk).update(revision=3)
    Decision.objects.filter(item=item).update(revision=3)
    gold = golden_item_mark(
        item=item, expected_action="remove", note="slur in the second line", created_by=admin_user
    )
    assert (gold.revision, gold.expected_action, gold.active) == (3, "remove", True)
    assert (gold.note, gold.created_by) == ("slur in the second line", admin_user)


def test_the_expected_action_is_approve_or_remove(admin_user):
    with pytest.raises(ValueError, match="approve or remove"):
        golden_item_mark(item=decided(), expected_action="escalate", created_by=None)


def test_marking_again_with_another_expected_action_rescores_the_answers(reviewer):
    gold = golden("approve")
    given = answer(reviewer, gold, "remove")
    assert given.correct is False
    golden_item_mark(item=gold.item, expected_action="remove", created_by=None)
    given.refresh_from_db()
    assert given.correct is True and GoldenItem.objects.count() == 1


# --- Serving ---------------------------------------------------------------------------------


def test_with_a_share_of_one_next_serves_a_golden_item_instead_of_the_queue(client, reviewer):
    share(reviewer, 1.0)
    real = ItemFactory(violation_score=0.99)
    gold = golden()
    response = client.get("/queue/next/?source=")
    assert response.url == f"/items/{gold.item_id}/"
    served = GoldenAnswer.objects.get()
    assert (served.golden, served.reviewer, served.answered_at) == (gold, reviewer, None)
    real.refresh_from_db()
    assert real.claimed_by is None  # the queue's item stays free for others


def test_with_a_share_of_zero_next_never_serves_a_golden_item(client, reviewer):
    share(reviewer, 0.0)
    real = ItemFactory()
    golden()
    for _ in range(10):
        assert client.get("/queue/next/").url == f"/items/{real.pk}/"
    assert not GoldenAnswer.objects.exists()


def test_without_a_setting_of_their_own_the_site_share_applies(client, reviewer, settings):
    settings.REVIEW_GOLDEN_SHARE = 1.0
    ItemFactory()
    gold = golden()
    assert client.get("/queue/next/").url == f"/items/{gold.item_id}/"
    share(reviewer, 0.0)  # their own setting wins
    assert golden_share(reviewer) == 0.0


def test_a_golden_item_is_due_with_the_share_as_probability(reviewer):
    share(reviewer, 0.3)
    assert golden_due(reviewer, draw=lambda: 0.29)
    assert not golden_due(reviewer, draw=lambda: 0.3)
    draws = iter([0.05, 0.5, 0.95, 0.2, 0.31, 0.0, 0.99, 0.7, 0.1, 0.6])
    due = [golden_due(reviewer, draw=lambda: next(draws)) for _ in range(10)]
    assert due.count(True) == 4  # 0.05, 0.2, 0.0 and 0.1 fall under 0.3


def test_an_empty_queue_serves_no_golden_item_either(client, reviewer):
    share(reviewer, 1.0)
    golden()
    assert client.get("/queue/next/").url == "/"
    assert not GoldenAnswer.objects.exists()


def test_golden_items_of_sources_the_reviewer_may_not_review_are_never_served(client, reviewer):
    mine, other = SourceFactory(), SourceFactory()
    settings_row = ReviewerSettings.objects.create(user=reviewer, golden_share=1.0)
    settings_row.sources.set([mine])
    real = ItemFactory(source=mine)
    golden(source=other)
    assert client.get("/queue/next/").url == f"/items/{real.pk}/"
    allowed = golden(source=mine)
    client.post(f"/items/{real.pk}/release/")
    assert client.get("/queue/next/").url == f"/items/{allowed.item_id}/"


def test_the_queue_filters_apply_to_golden_items_too(client, reviewer):
    share(reviewer, 1.0)
    wanted = SourceFactory()
    real = ItemFactory(source=wanted)
    golden()  # another source
    assert client.get(f"/queue/next/?source={wanted.pk}").url == (
        f"/items/{real.pk}/?source={wanted.pk}"
    )


def test_the_same_golden_item_is_never_served_twice_to_one_reviewer(client, reviewer):
    share(reviewer, 1.0)
    real = ItemFactory()
    gold = golden()
    assert client.get("/queue/next/").url == f"/items/{gold.item_id}/"
    client.post(f"/items/{gold.item_id}/", {"revision": "1", "action": "approve"})
    assert client.get("/queue/next/").url == f"/items/{real.pk}/"
    assert GoldenAnswer.objects.count() == 1
    # Another reviewer still gets it.
    other = UserFactory()
    share(other, 1.0)
    assert golden_next(reviewer=other, filters=QueueFilter()) == gold


def test_a_reviewer_is_never_served_an_item_they_decided_themselves(client, reviewer):
    share(reviewer, 1.0)
    real = ItemFactory()
    item = decided("remove", by=reviewer)
    golden_item_mark(item=item, expected_action="remove", created_by=None)
    assert client.get("/queue/next/").url == f"/items/{real.pk}/"


def test_unmarked_or_since_reopened_golden_items_are_not_served(reviewer):
    unmarked = golden()
    golden_item_unmark(golden=unmarked)
    reopened = golden()
    Item.objects.filter(pk=reopened.item_id).update(status=Item.Status.REREVIEW)
    edited = golden()
    Item.objects.filter(pk=edited.item_id).update(revision=2)
    assert golden_next(reviewer=reviewer, filters=QueueFilter()) is None


def test_the_failed_and_escalated_queues_serve_no_golden_items(reviewer):
    golden()
    for status in ("failed", "escalated"):
        filters = QueueFilter(status=status)
        assert golden_next(reviewer=reviewer, filters=filters) is None


# --- The item page of a served golden item ---------------------------------------------------


def served_to(client, user) -> GoldenItem:
    share(user, 1.0)
    ItemFactory(violation_score=0.5)
    gold = golden("remove", violation_score=0.8)
    assert client.get("/queue/next/").url == f"/items/{gold.item_id}/"
    return gold


def test_a_served_golden_item_looks_like_an_undecided_queue_item(client, reviewer):
    gold = served_to(client, reviewer)
    decider = gold.item.decisions.get().reviewer.username
    page = client.get(f"/items/{gold.item_id}/").content.decode()
    assert "golden" not in page.lower()
    assert decider not in page
    assert "Decided" not in page and "decision-remove" not in page
    assert "Flagged (in queue)" in page
    assert 'id="decide"' in page and 'name="decisions_seen" value="0"' in page
    ordinary = client.get(f"/items/{ItemFactory().pk}/").content.decode()

    def shortcuts(html):
        return sorted(set(re.findall(r'aria-keyshortcuts="([^"]+)"', html)))

    assert shortcuts(page) == shortcuts(ordinary)


def test_answering_records_correctness_and_goes_to_the_next_item(client, reviewer):
    gold = served_to(client, reviewer)
    response = client.post(
        f"/items/{gold.item_id}/?source=",
        {"revision": "1", "action": "remove", "reason_remove": reason_id("remove"), "next": "1"},
    )
    assert response.url == "/queue/next/"
    given = GoldenAnswer.objects.get()
    assert (given.action, given.correct) == ("remove", True)
    assert given.reason == Decision.objects.get().reason_choice.name
    assert given.answered_at is not None


def test_answering_leaves_the_item_its_decisions_and_its_callbacks_untouched(client, reviewer):
    gold = served_to(client, reviewer)
    source = gold.item.source
    source.callback_url = "https://product.example/hook"
    source.save()
    before = Item.objects.values().get(pk=gold.item_id)
    counts = (Decision.objects.count(), CallbackDelivery.objects.count())
    client.post(f"/items/{gold.item_id}/", {"revision": "1", "action": "approve", "next": "1"})
    assert GoldenAnswer.objects.get().correct is False
    assert Item.objects.values().get(pk=gold.item_id) == before
    assert (Decision.objects.count(), CallbackDelivery.objects.count()) == counts


def test_escalating_a_golden_item_is_recorded_as_a_wrong_answer(client, reviewer):
    gold = served_to(client, reviewer)
    client.post(
        f"/items/{gold.item_id}/",
        {
            "revision": "1",
            "action": "escalate",
            "reason_escalate": reason_id("escalate"),
            "next": "1",
        },
    )
    given = GoldenAnswer.objects.get()
    assert (given.action, given.correct) == ("escalate", False)
    assert Item.objects.get(pk=gold.item_id).status == "decided"


def test_a_golden_answer_needs_a_reason_like_a_decision(client, reviewer):
    gold = served_to(client, reviewer)
    response = client.post(
        f"/items/{gold.item_id}/", {"revision": "1", "action": "remove", "next": "1"}
    )
    assert response.url == f"/items/{gold.item_id}/"
    assert GoldenAnswer.objects.get().answered_at is None


def test_a_served_golden_item_reopened_meanwhile_is_an_ordinary_item_again(client, reviewer):
    gold = served_to(client, reviewer)
    Item.objects.filter(pk=gold.item_id).update(status=Item.Status.REREVIEW)
    page = client.get(f"/items/{gold.item_id}/").content.decode()
    assert "Sent for re-review (in queue)" in page and "decision-remove" in page
    client.post(
        f"/items/{gold.item_id}/", {"revision": "1", "action": "approve", "decisions_seen": "1"}
    )
    assert GoldenAnswer.objects.get().answered_at is None  # a real decision, not an answer
    assert gold.item.decisions.count() == 2


def test_a_double_submit_counts_once(client, reviewer):
    gold = served_to(client, reviewer)
    given = GoldenAnswer.objects.get()
    golden_answer_record(answer=given, reviewer=reviewer, action="approve")
    with pytest.raises(AlreadyAnswered):
        golden_answer_record(
            answer=given, reviewer=reviewer, action="remove", reason_id=reason_id("remove")
        )
    assert GoldenAnswer.objects.get().action == "approve"
    assert gold.item.decisions.count() == 1


def test_a_reviewer_cannot_answer_a_golden_item_that_was_not_served_to_them(client, reviewer):
    gold = golden("remove")
    other = UserFactory()
    theirs = golden_answer_serve(golden=gold, reviewer=other)
    with pytest.raises(NotAllowed):
        golden_answer_record(answer=theirs, reviewer=reviewer, action="approve")
    # Through the page, the post is no golden answer: their answer stays open, none is mine.
    client.post(
        f"/items/{gold.item_id}/", {"revision": "1", "action": "approve", "decisions_seen": "1"}
    )
    theirs.refresh_from_db()
    assert theirs.answered_at is None
    assert not GoldenAnswer.objects.filter(reviewer=reviewer).exists()


def test_after_a_golden_answer_no_undo_is_offered(client, reviewer):
    earlier = ItemFactory(violation_score=0.3)
    client.post(f"/items/{earlier.pk}/", {"revision": "1", "action": "approve", "next": "1"})
    gold = served_to(client, reviewer)
    client.post(f"/items/{gold.item_id}/", {"revision": "1", "action": "approve", "next": "1"})
    page = client.get("/queue/next/", follow=True).content.decode()
    assert 'id="undo"' not in page
    real_decision = gold.item.decisions.get()
    assert f"/decisions/{real_decision.pk}/undo/" not in page


def test_the_reviewer_never_sees_golden_in_their_workspace(client, reviewer):
    gold = served_to(client, reviewer)
    client.post(f"/items/{gold.item_id}/", {"revision": "1", "action": "approve", "next": "1"})
    for url in ("/", "/me/decisions/", "/me/settings/", f"/items/{gold.item_id}/"):
        assert "golden" not in client.get(url).content.decode().lower(), url


def test_a_golden_answer_is_listed_among_the_reviewers_decisions_as_one_of_theirs(client, reviewer):
    before, after = ItemFactory(), ItemFactory()
    decision_record(item=before, reviewer=reviewer, action="approve")
    gold = golden("remove")
    answer(reviewer, gold, "remove")
    decision_record(item=after, reviewer=reviewer, action="approve")
    page = client.get("/me/decisions/").content.decode()
    links = [f'href="/items/{pk}/"' for pk in (after.pk, gold.item_id, before.pk)]
    assert all(link in page for link in links)
    assert [page.index(link) for link in links] == sorted(page.index(link) for link in links)
    row = page[page.index(links[1]) :].split("</tr>")[0]
    reason = DecisionReason.objects.get(pk=reason_id("remove")).name
    assert "Remove" in row and reason in row and "Decided" in row
    assert "golden" not in page.lower()


def test_my_decisions_pages_through_decisions_and_golden_answers_alike(reviewer):
    at = datetime(2026, 3, 2, 9, tzinfo=UTC)
    expected = []
    for minute in range(3):
        item = ItemFactory()
        decision = decision_record(item=item, reviewer=reviewer, action="approve")
        Decision.objects.filter(pk=decision.pk).update(created_at=at + timedelta(minutes=minute))
        gold = golden("approve")
        # An answer at the same instant as a decision comes after it.
        answer(reviewer, gold, "approve", at=at + timedelta(minutes=minute))
        expected[:0] = [item.pk, gold.item_id]  # newest first
    seen, before = [], None
    while True:
        rows, before = decisions_by(reviewer=reviewer, before=before, size=2)
        seen += [row.item_id for row in rows]
        if before is None:
            break
    assert seen == expected


# --- Skipping, releasing, leaving a golden item ---------------------------------------------


def test_skipping_a_served_golden_item_moves_on_like_any_skip(client, reviewer):
    gold = served_to(client, reviewer)
    real = Item.objects.exclude(pk=gold.item_id).get()
    response = client.post(f"/items/{gold.item_id}/skip/", follow=True)
    assert response.redirect_chain[-1][0] == f"/items/{real.pk}/"
    assert f"Skipped item {gold.item_id}." in response.content.decode()
    given = GoldenAnswer.objects.get()
    assert (given.action, given.answered_at, given.correct) == ("skip", None, None)


def test_releasing_a_served_golden_item_records_a_skip_too(client, reviewer):
    gold = served_to(client, reviewer)
    response = client.post(f"/items/{gold.item_id}/release/")
    assert response.url == "/"
    given = GoldenAnswer.objects.get()
    assert (given.action, given.answered_at, given.correct) == ("skip", None, None)


def test_a_skipped_golden_item_is_not_served_to_that_reviewer_again(client, reviewer):
    gold = served_to(client, reviewer)
    client.post(f"/items/{gold.item_id}/skip/")
    client.logout()
    client.force_login(reviewer)  # a new session: its list of skipped items is empty
    assert golden_next(reviewer=reviewer, filters=QueueFilter()) is None
    assert client.get("/queue/next/").url != f"/items/{gold.item_id}/"


def test_a_skipped_golden_answer_counts_neither_right_nor_wrong(client):
    ann = UserFactory(username="ann")
    right, skipped = golden("approve"), golden("remove")
    answer(ann, right, "approve")
    golden_answer_skip(answer=golden_answer_serve(golden=skipped, reviewer=ann), reviewer=ann)
    # Marking again rescores the answers given; a skip stays out of it.
    golden_item_mark(item=skipped.item, expected_action="approve", created_by=None)
    (row,) = golden_agreement()
    assert (row.answered, row.correct, row.wrong, row.skipped) == (1, 1, 0, 1)
    assert GoldenAnswer.objects.get(golden=skipped).correct is None
    assert not golden_wrong_answers(reviewer_id=ann.pk).exists()


def test_a_golden_item_served_and_never_answered_counts_as_skipped_after_its_day():
    """A tab closed on a golden item: no answer, no skip. Once its day is over (it can no
    longer be answered) it counts as skipped; until then it is still open."""
    ann = UserFactory(username="ann")
    abandoned, still_open = golden("approve"), golden("remove")
    served = golden_answer_serve(golden=abandoned, reviewer=ann)
    GoldenAnswer.objects.filter(pk=served.pk).update(
        served_at=served.served_at - GOLDEN_OPEN_FOR - timedelta(minutes=1)
    )
    golden_answer_serve(golden=still_open, reviewer=ann)
    (row,) = golden_agreement()
    assert (row.answered, row.correct, row.wrong, row.skipped) == (0, 0, 0, 1)


def test_the_team_page_shows_a_reviewer_who_only_skipped_with_no_share(client):
    sam = UserFactory(username="sam")
    gold = golden()
    golden_answer_skip(answer=golden_answer_serve(golden=gold, reviewer=sam), reviewer=sam)
    golden_answer_serve(golden=golden(), reviewer=sam)  # open: not counted at all
    client.force_login(UserFactory(is_staff=True))
    page = client.get("/team/").content.decode()
    row = page[page.index('data-reviewer="sam"') :]
    row = row[: row.index("</tr>")]
    assert "– (0/0)" in row and '<td class="num golden-skipped">1</td>' in row


def test_a_reviewer_back_on_a_skipped_golden_item_still_sees_it_waiting_and_may_answer(
    client, reviewer
):
    gold = served_to(client, reviewer)
    client.post(f"/items/{gold.item_id}/skip/")
    page = client.get(f"/items/{gold.item_id}/").content.decode()  # the back button
    assert 'id="decide"' in page and "decision-remove" not in page
    client.post(f"/items/{gold.item_id}/", {"revision": "1", "action": "approve", "next": "1"})
    given = GoldenAnswer.objects.get()
    assert (given.action, given.correct) == ("approve", False)
    assert given.answered_at is not None
    assert gold.item.decisions.count() == 1


def test_skipping_a_golden_item_served_to_someone_else_is_not_allowed(reviewer):
    theirs = golden_answer_serve(golden=golden(), reviewer=UserFactory())
    with pytest.raises(NotAllowed):
        golden_answer_skip(answer=theirs, reviewer=reviewer)
    theirs.refresh_from_db()
    assert theirs.action == ""


def test_a_golden_item_left_open_for_over_a_day_is_shown_as_it_is(client, reviewer):
    gold = served_to(client, reviewer)
    given = GoldenAnswer.objects.get()
    almost = given.served_at + GOLDEN_OPEN_FOR - timedelta(minutes=1)
    assert golden_answer_open(reviewer=reviewer, item=gold.item, now=almost) == given
    GoldenAnswer.objects.filter(pk=given.pk).update(
        served_at=given.served_at - GOLDEN_OPEN_FOR - timedelta(minutes=1)
    )
    assert golden_answer_open(reviewer=reviewer, item=gold.item) is None
    page = client.get(f"/items/{gold.item_id}/").content.decode()
    assert "decision-remove" in page and 'id="decide"' not in page
    # Nothing to answer any more, and it is never served again: it counts for nothing.
    client.post(f"/items/{gold.item_id}/", {"revision": "1", "action": "approve", "next": "1"})
    assert GoldenAnswer.objects.get().answered_at is None
    assert golden_next(reviewer=reviewer, filters=QueueFilter()) is None


# --- The reviewer's note ---------------------------------------------------------------------


def test_the_reviewers_note_is_kept_with_the_answer_and_shown_to_leads(client, reviewer):
    gold = served_to(client, reviewer)
    client.post(
        f"/items/{gold.item_id}/",
        {"revision": "1", "action": "approve", "note": "satire, <b>surely</b>", "next": "1"},
    )
    assert GoldenAnswer.objects.get().note == "satire, <b>surely</b>"
    assert gold.item.decisions.get().note == ""  # the real decision is untouched
    client.force_login(UserFactory(is_staff=True))
    listing = client.get(f"/team/{reviewer.pk}/golden-wrong/").content.decode()
    assert '<td class="golden-note">satire, &lt;b&gt;surely&lt;/b&gt;</td>' in listing


# --- Agreement, for leads ------------------------------------------------------------------


NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)  # a Wednesday


def test_agreement_per_reviewer_overall_and_per_week_on_a_constructed_set():
    ann, bob = UserFactory(username="ann"), UserFactory(username="bob")
    golds = [golden("approve") for _ in range(5)] + [golden("remove") for _ in range(2)]
    this_week, last_week = NOW - timedelta(days=1), NOW - timedelta(days=8)
    long_ago = NOW - timedelta(weeks=20)
    # ann: 4 of 6 right; this week 2/3, last week 1/2, long ago 1/1 (counts overall only).
    answer(ann, golds[0], "approve", at=this_week)
    answer(ann, golds[1], "approve", at=this_week)
    answer(ann, golds[5], "approve", at=this_week)  # expected remove
    answer(ann, golds[2], "approve", at=last_week)
    answer(ann, golds[6], "escalate", at=last_week)  # escalation never matches
    answer(ann, golds[3], "approve", at=long_ago)
    # bob: 0 of 1, and an answer to an item since unmarked, which does not count.
    answer(bob, golds[5], "approve", at=this_week)
    answer(bob, golds[4], "approve", at=this_week)
    golden_item_unmark(golden=golds[4])
    golden_answer_serve(golden=golds[0], reviewer=bob)  # open: not answered

    rows = {row.reviewer: row for row in golden_agreement(now=NOW)}
    assert sorted(rows) == ["ann", "bob"]
    ann_row, bob_row = rows["ann"], rows["bob"]
    assert (ann_row.answered, ann_row.correct, ann_row.wrong) == (6, 4, 2)
    assert ann_row.share == pytest.approx(4 / 6)
    assert len(ann_row.weeks) == 8
    assert ann_row.weeks[-1].starts == datetime(2026, 11, 23, tzinfo=UTC)
    assert ann_row.weeks[0].starts == datetime(2026, 10, 5, tzinfo=UTC)
    assert [(w.answered, w.correct) for w in ann_row.weeks] == [(0, 0)] * 6 + [(2, 1), (3, 2)]
    assert ann_row.weeks[-1].share == pytest.approx(2 / 3) and ann_row.weeks[0].share is None
    assert (bob_row.answered, bob_row.correct, bob_row.share) == (1, 0, 0.0)


def test_the_team_page_shows_golden_agreement_and_links_the_wrong_answers(client):
    ann = UserFactory(username="ann")
    right, wrong = golden("approve"), golden("remove", content_text="the wrongly approved one")
    answer(ann, right, "approve")
    answer(ann, wrong, "approve")
    client.force_login(UserFactory(is_staff=True))
    page = client.get("/team/").content.decode()
    row = page[page.index('data-reviewer="ann"') :]
    row = row[: row.index("</tr>")]
    assert "50 % (1/2)" in row
    assert "<svg" in row and row.count("<rect") == 8
    link = f"/team/{ann.pk}/golden-wrong/"
    assert f'href="{link}"' in row and "1 wrong" in row
    listing = client.get(link).content.decode()
    assert f'href="/items/{wrong.item_id}/"' in listing
    assert f'href="/items/{right.item_id}/"' not in listing


def test_reviewers_cannot_open_the_leads_golden_pages(client, reviewer):
    assert client.get("/team/").status_code == 403
    assert client.get(f"/team/{reviewer.pk}/golden-wrong/").status_code == 403
    client.logout()
    assert client.get("/team/").status_code == 302  # to the login


# --- Marking from the item page and the admin ----------------------------------------------


def test_staff_mark_and_unmark_a_decided_item_from_its_page(client, admin_user):
    item = decided("remove")
    client.force_login(admin_user)
    page = client.get(f"/items/{item.pk}/").content.decode()
    assert 'id="golden-mark"' in page and '<option value="remove" selected>' in page
    client.post(
        f"/items/{item.pk}/golden/",
        {"expected_action": "remove", "note": "clear threat", "revision": "1"},
    )
    gold = GoldenItem.objects.get()
    assert (gold.item, gold.expected_action, gold.note, gold.created_by) == (
        item,
        "remove",
        "clear threat",
        admin_user,
    )
    assert "clear threat" in client.get(f"/items/{item.pk}/").content.decode()
    client.post(f"/items/{item.pk}/golden/", {"unmark": "1"})
    gold.refresh_from_db()
    assert gold.active is False


def test_the_golden_form_is_for_staff_on_decided_items_only(client, reviewer, admin_user):
    item = decided()
    assert 'id="golden-mark"' not in client.get(f"/items/{item.pk}/").content.decode()
    response = client.post(f"/items/{item.pk}/golden/", {"expected_action": "approve"})
    assert response.status_code == 403
    client.force_login(admin_user)
    waiting = ItemFactory()
    assert 'id="golden-mark"' not in client.get(f"/items/{waiting.pk}/").content.decode()
    client.post(f"/items/{waiting.pk}/golden/", {"expected_action": "approve", "revision": "1"})
    assert not GoldenItem.objects.exists()


def mark_golden_in_admin(client, items) -> str:
    """The Items admin's "Mark as golden" on `items`: its confirmation page."""
    return client.post(
        "/admin/moderation/item/",
        {"action": "mark_golden", "_selected_action": [item.pk for item in items]},
    ).content.decode()


def confirm(client, page: str):
    """Send the confirmation page's form as it was shown."""
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)
    data: dict[str, list[str]] = {}
    for name, value in fields:
        data.setdefault(name, []).append(value)
    return client.post("/admin/moderation/item/", data, follow=True)


def test_the_admin_action_marks_decided_items_expecting_their_current_decision(client, admin_user):
    client.force_login(admin_user)
    removed, approved, escalated, waiting = (
        decided("remove", content_text="a clear threat"),
        decided("approve"),
        decided("escalate"),
        ItemFactory(),
    )
    page = mark_golden_in_admin(client, [removed, approved, escalated, waiting])
    # What is vouched for is shown first; nothing is marked yet.
    assert "a clear threat" in page and "2 selected items are not shown" in page
    assert not GoldenItem.objects.exists()
    confirm(client, page)
    assert dict(GoldenItem.objects.values_list("item_id", "expected_action")) == {
        removed.pk: "remove",
        approved.pk: "approve",
    }


def test_the_admin_action_leaves_an_item_edited_or_decided_again_after_its_confirmation(
    client, admin_user
):
    client.force_login(admin_user)
    kept, edited, redecided = decided("remove"), decided("remove"), decided("remove")
    page = mark_golden_in_admin(client, [kept, edited, redecided])
    # Meanwhile one is edited and decided again, another undone and approved.
    Item.objects.filter(pk=edited.pk).update(revision=2, content_text="now harmless")
    decision_record(item=edited, reviewer=UserFactory(), action="approve")
    first = redecided.decisions.get()
    decision_undo(decision=first, reviewer=first.reviewer)
    decision_record(item=redecided, reviewer=first.reviewer, action="approve")
    html = confirm(client, page).content.decode()
    assert dict(GoldenItem.objects.values_list("item_id", "expected_action")) == {kept.pk: "remove"}
    assert (
        f"2 items were not marked: edited or decided again after the confirmation page was "
        f"shown (items {edited.pk}, {redecided.pk})" in html
    )


def test_the_admin_lists_golden_items_and_answers(client, admin_user):
    gold = golden("remove")
    answer(UserFactory(), gold, "approve")
    client.force_login(admin_user)
    listing = client.get("/admin/moderation/goldenitem/?active__exact=1")
    assert listing.status_code == 200 and "0%" in listing.content.decode()
    wrong = client.get(
        f"/admin/moderation/goldenanswer/?correct__exact=0&golden__id__exact={gold.pk}"
    )
    assert wrong.status_code == 200 and "1 golden answer" in wrong.content.decode()


def test_a_golden_item_the_system_approved_is_shown_as_an_audit_sample(db):
    item = ItemFactory(status=Item.Status.DECIDED)
    Decision.objects.create(
        item=item, reviewer=None, action="approve", status_before=Item.Status.LABELED
    )
    # An unflagged item reaches a reviewer only as an audit sample: "flagged" would not fit
    # its labels' confident "0" and give it away.
    assert golden_shown_status(item) == Item.Status.AUDIT
