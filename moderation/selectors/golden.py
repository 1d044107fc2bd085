"""Golden items: when to serve one, which, the answer a reviewer owes, agreement figures."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.db.models.functions import TruncWeek
from django.utils import timezone

from moderation.filters import QueueFilter
from moderation.models import (
    IN_QUEUE,
    Decision,
    GoldenAnswer,
    GoldenItem,
    Item,
    ReviewerSettings,
)
from moderation.permissions import QueueScope, reviewer_queue_ids, reviewer_source_ids
from moderation.routing import QueueRow
from moderation.selectors.queue import queue_filter_q

# Golden items ride along with the main queue only: the failed and escalated queues are
# small, and a decided item there would stand out.
GOLDEN_QUEUES = ("undecided", "mine")


def golden_share(user, *, queue: QueueRow | None = None) -> float:
    """The share of this reviewer's "next" items that are golden: the queue's own share when
    the item "next" found is in a queue that has one, else the reviewer's setting, else the
    site's REVIEW_GOLDEN_SHARE."""
    if queue is not None and queue.golden_share is not None:
        return min(1.0, max(0.0, queue.golden_share))
    own = (
        ReviewerSettings.objects.filter(user_id=user.pk)
        .values_list("golden_share", flat=True)
        .first()
    )
    share = own if own is not None else settings.REVIEW_GOLDEN_SHARE
    return min(1.0, max(0.0, share))


def golden_due(
    user, *, queue: QueueRow | None = None, draw: Callable[[], float] = random.random
) -> bool:
    """Whether this "next" should be a golden item: true with the share (golden_share) as its
    probability. `draw` returns a number in [0, 1) (tests pass a seeded one); a share of 0
    never draws, 1 always does."""
    share = golden_share(user, queue=queue)
    return share > 0 and draw() < share


def golden_next(
    *,
    reviewer,
    filters: QueueFilter,
    exclude_item_ids: Iterable[int] = (),
    within: QueueScope = None,
) -> GoldenItem | None:
    """A golden item to serve to this reviewer under the queue's filters: active, its item
    still decided at the revision the expected action is about, of a source and a queue they
    may review (`within`: only these queues), never served to them before, and not an item
    they decided themselves (they would know the answer). Oldest first, so every golden item
    gets answers."""
    if filters.status not in GOLDEN_QUEUES:
        return None
    allowed = reviewer_source_ids(reviewer)
    queues = reviewer_queue_ids(reviewer)
    if within is not None:
        queues = within if queues is None else queues & within
    served = GoldenAnswer.objects.filter(golden_id=OuterRef("pk"), reviewer_id=reviewer.pk)
    decided_by_them = Decision.objects.filter(item_id=OuterRef("item_id"), reviewer_id=reviewer.pk)
    candidates = GoldenItem.objects.filter(
        queue_filter_q(filters, allowed=allowed, prefix="item__", queues=queues),
        active=True,
        item__status=Item.Status.DECIDED,
        item__revision=F("revision"),
    ).filter(~Exists(served), ~Exists(decided_by_them))
    if filters.score_min is not None:
        candidates = candidates.filter(item__violation_score__gte=filters.score_min)
    if filters.score_max is not None:
        candidates = candidates.filter(item__violation_score__lte=filters.score_max)
    exclude = list(exclude_item_ids)
    if exclude:
        candidates = candidates.exclude(item_id__in=exclude)
    return candidates.select_related("item").order_by("created_at", "id").first()


# How long a golden item served and not answered keeps its disguise for the reviewer. A real
# waiting item left that long would have been decided by someone else meanwhile, so seeing
# it decided then gives nothing away; without a limit, an item once served and left (a
# closed tab) would stay "waiting" on that reviewer's page for good.
GOLDEN_OPEN_FOR = timedelta(days=1)


def golden_answer_open(*, reviewer, item: Item, now: datetime | None = None) -> GoldenAnswer | None:
    """The golden answer this reviewer owes on this item (skipped ones too: they may come
    back to it), while the item still stands as it did when it was made golden and for
    GOLDEN_OPEN_FOR after it was served; their item page then shows it as an undecided
    queue item. None once answered, once that time is up, or if the item changed since
    (an undo, a re-review, an edit): then it is an ordinary item again."""
    if item.status != Item.Status.DECIDED:
        return None
    now = now or timezone.now()
    return (
        GoldenAnswer.objects.filter(
            reviewer_id=reviewer.pk,
            golden__item_id=item.pk,
            golden__revision=item.revision,
            answered_at__isnull=True,
            served_at__gt=now - GOLDEN_OPEN_FOR,
        )
        .select_related("golden")
        .first()
    )


def golden_answer_given(*, reviewer, item: Item) -> GoldenAnswer | None:
    """This reviewer's answer to the golden item, while the item still stands as it did when
    it was made golden: reopened, the item keeps its disguise (see views.item)."""
    if item.status != Item.Status.DECIDED:
        return None
    return (
        GoldenAnswer.objects.filter(
            reviewer_id=reviewer.pk,
            golden__item_id=item.pk,
            golden__revision=item.revision,
            answered_at__isnull=False,
        )
        .select_related("golden")
        .first()
    )


def golden_answered_status(action: str) -> str:
    """The status a golden item reads as to the reviewer who answered it, while it stands as
    it did when made golden: as if their answer had been the item's decision."""
    return str(Item.Status.ESCALATED if action == Decision.Action.ESCALATE else Item.Status.DECIDED)


def golden_shown_status(item: Item) -> str:
    """The queue status a golden item is shown with: where it stood before its first decision
    on this revision (flagged, failed, audit ...), so the page reads like any waiting item."""
    before: str | None = (
        Decision.objects.filter(item_id=item.pk, revision=item.revision)
        .order_by("created_at", "id")
        .values_list("status_before", flat=True)
        .first()
    )
    if before in (Item.Status.RECEIVED, Item.Status.LABELING, Item.Status.LABELED):
        # Decided without entering the queue (the system's auto-approval): unflagged items
        # reach a reviewer only as audit samples, so that is what it reads as.
        return str(Item.Status.AUDIT)
    return before if before in IN_QUEUE else str(Item.Status.FLAGGED)


@dataclass(frozen=True)
class GoldenWeek:
    starts: datetime
    answered: int
    correct: int

    @property
    def share(self) -> float | None:
        return self.correct / self.answered if self.answered else None


@dataclass(frozen=True)
class GoldenAgreement:
    reviewer_id: int
    reviewer: str
    answered: int
    correct: int
    weeks: list[GoldenWeek]
    # Served and skipped (or released): counted apart, since many skips would leave the
    # share correct resting on the items the reviewer chose to answer.
    skipped: int = 0

    @property
    def share(self) -> float | None:
        return self.correct / self.answered if self.answered else None

    @property
    def wrong(self) -> int:
        return self.answered - self.correct


def golden_agreement(*, weeks: int = 8, now: datetime | None = None) -> list[GoldenAgreement]:
    """Per reviewer with answers or skips: golden items answered, how many matched the
    expected action, and the same per week (weeks start on Monday, UTC) for the last `weeks`
    weeks, oldest first; and how many they skipped (or never answered within
    GOLDEN_OPEN_FOR of being served). Answers to items no longer golden
    (unmarked) do not count."""
    now = now or timezone.now()
    this_week = (now - timedelta(days=now.weekday())).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    starts = [this_week - timedelta(weeks=n) for n in range(weeks - 1, -1, -1)]
    active = GoldenAnswer.objects.filter(golden__active=True)
    answers = active.filter(answered_at__isnull=False)
    correct = Count("id", filter=Q(correct=True))
    # Skipped: by the reviewer (skip, release), or left unanswered past the time it could be
    # answered (a tab closed on it): either way served and never answered.
    skip = Q(answered_at__isnull=True) & (
        Q(action=GoldenAnswer.SKIP) | Q(served_at__lte=now - GOLDEN_OPEN_FOR)
    )
    totals = (
        active.filter(Q(answered_at__isnull=False) | skip)
        .values("reviewer_id", "reviewer__username")
        .annotate(
            answered=Count("id", filter=Q(answered_at__isnull=False)),
            correct=correct,
            skipped=Count("id", filter=skip),
        )
        .order_by("reviewer__username")
    )
    per_week: dict[tuple[int, datetime], tuple[int, int]] = {
        (row["reviewer_id"], row["week"]): (row["answered"], row["correct"])
        for row in answers.filter(answered_at__gte=starts[0])
        .annotate(week=TruncWeek("answered_at", tzinfo=UTC))
        .values("reviewer_id", "week")
        .annotate(answered=Count("id"), correct=correct)
        .order_by()
    }
    return [
        GoldenAgreement(
            reviewer_id=row["reviewer_id"],
            reviewer=row["reviewer__username"],
            answered=row["answered"],
            correct=row["correct"],
            weeks=[
                GoldenWeek(start, *per_week.get((row["reviewer_id"], start), (0, 0)))
                for start in starts
            ],
            skipped=row["skipped"],
        )
        for row in totals
    ]


def golden_wrong_answers(*, reviewer_id: int) -> QuerySet[GoldenAnswer]:
    """A reviewer's answers that missed the expected action, newest first (for leads)."""
    return (
        GoldenAnswer.objects.filter(reviewer_id=reviewer_id, correct=False, golden__active=True)
        .select_related("golden__item__source")
        .order_by("-answered_at", "-id")
    )
