"""The queue pages: the review queue and the seniors' escalated queue, and "next" (the top
free item, or now and then a golden item, claimed and opened)."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from labelers.models import Labeler
from labelers.selectors import labeling_health, labeling_stalled
from lib.text import plural
from moderation.filters import SEARCH_MAX_LENGTH, STATUSES, QueueFilter
from moderation.models import Author, GoldenAnswer, Item, Source
from moderation.permissions import (
    can_review_escalated,
    reviewer_required,
    reviewer_source_ids,
    senior_required,
)
from moderation.routing import queue_row
from moderation.selectors.authors import authors_strikes
from moderation.selectors.banks import items_banks
from moderation.selectors.golden import (
    golden_due,
    golden_next,
)
from moderation.selectors.queue import (
    escalations_attach,
    queue_counts,
    queue_figures_cache,
    queue_next,
    queue_nothing_next,
    queue_page,
    queue_sla,
    queues_figures,
    reviewer_queues,
)
from moderation.selectors.reviewers import exposure, queues_over_budget, reviewer_settings
from moderation.services.claims import item_claim
from moderation.services.golden import (
    golden_answer_serve,
)


@require_GET
@reviewer_required
def queue(request: HttpRequest) -> HttpResponse:
    return _queue(request, QueueFilter.from_query(request.GET), title="Review queue")


@require_GET
@senior_required
def escalated_queue(request: HttpRequest) -> HttpResponse:
    """The seniors' own queue: escalated items, sorted and filtered like the main one."""
    filters = QueueFilter.from_query(request.GET).with_status("escalated")
    return _queue(request, filters, title="Escalated items", tabs=False)


def _queue(request: HttpRequest, filters: QueueFilter, *, title: str, tabs=True) -> HttpResponse:
    # Malformed filters are named on the page (400), and the queue shows the others.
    problems = QueueFilter.problems(request.GET)
    senior = can_review_escalated(request.user)
    if filters.status == "escalated" and not senior:
        raise PermissionDenied
    queues = reviewer_queues(request.user)
    if filters.queue is not None and filters.queue not in {queue.pk for queue in queues}:
        raise Http404  # another team's queue
    statuses = [status for status in STATUSES if senior or status != "escalated"]
    if not tabs:
        statuses = [filters.status]
    items, next_cursor = queue_page(
        reviewer=request.user, filters=filters, after=request.GET.get("after")
    )
    counts = queue_counts(reviewer=request.user, filters=filters, statuses=statuses)
    if filters.status == "escalated":
        escalations_attach(items)
    # The strike badge: the rows' authors and their active strikes, two queries a page.
    authors_strikes(items)
    items_banks(items)  # the hash banks a row matched: a tag with the bank's name
    allowed = reviewer_source_ids(request.user)
    sources = Source.objects.order_by("name")
    labelers = Labeler.objects.order_by("name")
    if allowed is not None:
        sources = sources.filter(pk__in=allowed)
        labelers = labelers.filter(sources__in=allowed).distinct()
    return render(
        request,
        "moderation/queue.html",
        {
            "title": title,
            "items": items,
            "author_filter": Author.objects.filter(pk=filters.author).first()
            if filters.author
            else None,
            "filters": filters,
            "tabs": [
                {
                    "status": status,
                    "label": STATUSES[status],
                    "count": counts[status],
                    "url": filters.with_status(status).querystring() or "?",
                    "active": status == filters.status,
                }
                for status in statuses
                if tabs
            ],
            "next_url": (
                "?" + urlencode({**filters.params(), "after": next_cursor}) if next_cursor else None
            ),
            "querystring": filters.querystring(),
            "sla": queue_sla(reviewer=request.user, escalated=filters.status == "escalated"),
            "sources": sources,
            "labelers": labelers,
            "media_choices": [
                ("", "Any"),
                ("image", "Has image"),
                ("video", "Has video"),
                ("text", "Text only"),
            ],
            "now": timezone.now(),
            **labeling_banner(),
            "filter_problems": problems,
            "search_max_length": SEARCH_MAX_LENGTH,
            # A tab per queue the reviewer is served, once there is more than the default.
            "queue_tabs": [
                {
                    "figures": figures,
                    "url": replace(filters, queue=figures.queue.pk).querystring(),
                    "active": figures.queue.pk == filters.queue,
                }
                for figures in (queues_figures(queues) if tabs and len(queues) > 1 else [])
            ],
            "all_queues_url": replace(filters, queue=None).querystring() or "?",
        },
        status=400 if problems else 200,
    )


def labeling_banner() -> dict:
    """What the queue page's banner says of labeling (four queries): the same for every
    reviewer, read at most once per process every few seconds, as the queue's figures."""
    return queue_figures_cache.get(
        "labeling-banner",
        lambda: {"health": labeling_health(), "stalled": labeling_stalled()},
    )


@require_GET
@reviewer_required
def queue_next_view(request: HttpRequest) -> HttpResponse:
    """Claim the top free item under the queue's filters and open it; the filters ride
    along in the item's URL so that the next "next" keeps them."""
    filters = QueueFilter.from_query(request.GET)
    if filters.status == "escalated" and not can_review_escalated(request.user):
        raise PermissionDenied
    for attempt in range(5):  # another reviewer may claim our pick between read and claim
        item, effective = _pick_next(request, filters)
        if item is None:
            messages.info(request, _nothing_next_message(request, filters))
            return redirect(reverse("queue") + filters.querystring())
        # A golden item only stands in for real work: with an empty queue, an item appearing
        # anyway would give it away.
        if attempt == 0 and (golden := _serve_golden(request, effective, item)):
            return redirect(reverse("item", args=[golden.golden.item_id]) + filters.querystring())
        if item_claim(item=item, reviewer=request.user):
            return redirect(reverse("item", args=[item.pk]) + filters.querystring())
    return redirect(reverse("queue") + filters.querystring())


def _nothing_next_message(request: HttpRequest, filters: QueueFilter) -> str:
    """What is really the case when "next" finds nothing: items may wait all the same."""
    why = queue_nothing_next(
        reviewer=request.user, filters=filters, exclude_ids=request.session.get("skipped", [])
    )
    queue_name = "escalated queue" if filters.status == "escalated" else "queue"
    if why.waiting == 0:
        if why.waiting_unfiltered and filters != QueueFilter(status=filters.status):
            return (
                f"Nothing waits under these filters{' and search' if filters.q else ''}; "
                f"{plural(why.waiting_unfiltered, 'item')} "
                f"{'waits' if why.waiting_unfiltered == 1 else 'wait'} in the whole "
                f"{queue_name}: clear the filters to see "
                f"{'it' if why.waiting_unfiltered == 1 else 'them'}."
            )
        return f"The {queue_name} is empty: nothing is waiting for review."
    parts = []
    if why.held_by_others:
        parts.append(
            f"{plural(why.held_by_others, 'item')} "
            f"{'is' if why.held_by_others == 1 else 'are'} being reviewed by someone else "
            "right now (back in the queue if they let go or their claim runs out)"
        )
    if why.skipped:
        parts.append(
            f"{plural(why.skipped, 'item')} you skipped {'is' if why.skipped == 1 else 'are'} "
            "not handed to you again this session (open it from the list to decide it)"
        )
    return f"Nothing free for you right now: {'; '.join(parts) or 'all are taken'}."


def _pick_next(request: HttpRequest, filters: QueueFilter) -> tuple[Item | None, QueueFilter]:
    """The next item for this reviewer, and the filters it was found under. In the queues
    whose exposure budget they are over (the queue's own when set, else theirs), text-only
    items first; the others' items as usual; the best of both by SLA and score."""
    skipped = request.session.get("skipped", [])
    # The languages the reviewer reads first, within their queues.
    languages = tuple(reviewer_settings(request.user).languages or ())

    def pick(filters: QueueFilter, within=None) -> Item | None:
        return queue_next(
            reviewer=request.user,
            filters=filters,
            exclude_ids=skipped,
            languages=languages,
            within=within,
        )

    if not filters.media:
        over, rest = queues_over_budget(request.user, exposure(request.user))
        text_first = replace(filters, media="text")
        if over and not rest:
            item = pick(text_first)
            if item is not None:
                return item, text_first
        elif over:
            found = [
                (item, under)
                for item, under in (
                    (pick(text_first, within=over), text_first),
                    (pick(filters, within=rest), filters),
                )
                if item is not None
            ]
            if found:
                return min(
                    found,
                    key=lambda pair: (
                        pair[0].language not in languages if languages else False,
                        pair[0].queue_key,
                        pair[0].pk,
                    ),
                )
    return pick(filters), filters


def _serve_golden(request: HttpRequest, filters: QueueFilter, item: Item) -> GoldenAnswer | None:
    """With the golden share as probability, a golden item (under the same filters) instead
    of the queue's next `item`: served by an open answer, not by a claim, since the item is
    decided and claims are for items waiting. When `item`'s queue has a golden share of its
    own, that share, and a golden item of that queue; else the reviewer's share, and one of
    any of their queues."""
    queue = queue_row(item.queue_id)
    if queue is not None and queue.golden_share is None:
        queue = None
    if not golden_due(request.user, queue=queue):
        return None
    golden = golden_next(
        reviewer=request.user,
        filters=filters,
        exclude_item_ids=request.session.get("skipped", []),
        within=None if queue is None else frozenset({queue.value}),
    )
    if golden is None:
        return None
    return golden_answer_serve(golden=golden, reviewer=request.user)


@require_GET
@senior_required
def escalated_next(request: HttpRequest) -> HttpResponse:
    filters = QueueFilter.from_query(request.GET).with_status("escalated")
    return redirect(reverse("queue_next") + filters.querystring())
