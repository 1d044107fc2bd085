"""Reads about hash banks: an item's matches, whether its media may be shown, the banks a
reviewer picks from ("bank this"), and the banks' counts."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, F, Max, Q, QuerySet
from django.utils import timezone

from moderation.models import Bank, BankMatch, Decision, Item


def item_bank_matches(item: Item) -> list[BankMatch]:
    return list(
        BankMatch.objects.filter(item=item).select_related("bank").order_by("-revision", "distance")
    )


def item_media_restricted(item: Item) -> bool:
    """A restricted bank matched the item (any revision): its media is never shown to a
    reviewer, only the match."""
    return BankMatch.objects.filter(item=item, bank__restricted=True).exists()


def item_removed(item: Item) -> bool:
    """Decided, and its standing decision is a removal: what "bank this" is offered on."""
    if item.status != Item.Status.DECIDED:
        return False
    last = (
        item.decisions.filter(action__in=[Decision.Action.APPROVE, Decision.Action.REMOVE])
        .exclude(undone_by__isnull=False)
        .order_by("-created_at", "-id")
        .first()
    )
    return last is not None and last.action == Decision.Action.REMOVE


def banks_to_pick(*, user, limit: int = 9) -> list[Bank]:
    """A short list of banks for "bank this": those this user banked into last, first."""
    return list(
        Bank.objects.annotate(last_used=Max("hashes__added_at", filter=Q(hashes__added_by=user)))
        .order_by(F("last_used").desc(nulls_last=True), "name")
        .exclude(action=Bank.Action.ALLOW)[:limit]
    )


def banks_overview() -> list[Bank]:
    """Each bank with its hash count and its matches this week (the admin's list)."""
    week = timezone.now() - timedelta(days=7)
    return list(
        Bank.objects.annotate(
            hash_count=Count("hashes", distinct=True),
            matches_week=Count("matches", filter=Q(matches__created_at__gte=week), distinct=True),
        ).order_by("name")
    )


def banks_savings(*, days: int = 7) -> list[dict]:
    """Per bank, the items it settled at intake in the last `days` and the paid label calls
    that avoided: one per active labeler routed to the item's source (what the dispatch would
    have created). Retroactive matches avoided nothing: those items were labeled already.
    One query (the join repeats a match once per labeler, which is what is counted)."""
    return list(banks_savings_query(days=days))


def banks_savings_query(*, days: int = 7) -> QuerySet:
    """banks_savings' read, for a page that reads it with others (lib/batch.py)."""
    since = timezone.now() - timedelta(days=days)
    active = Q(item__source__labelers__active=True)
    return (
        BankMatch.objects.filter(acted=True, retroactive=False, created_at__gte=since)
        .values("bank__name", "bank__action")
        .annotate(
            matches=Count("id", distinct=True), calls=Count("item__source__labelers", filter=active)
        )
        .order_by("-matches", "bank__name")
    )


def items_banks(items: list[Item]) -> None:
    """Give each item of a queue page its `banks_matched` (names of the banks its current
    revision matched; empty for most): one query, whatever the page holds."""
    found: dict[tuple[int, int], list[str]] = {}
    rows = BankMatch.objects.filter(item__in=[item.pk for item in items]).values_list(
        "item_id", "revision", "bank__name"
    )
    for item_id, revision, name in rows.order_by("item", "distance", "id"):
        found.setdefault((item_id, revision), []).append(name)
    for item in items:
        item.banks_matched = found.get((item.pk, item.revision), [])
