"""Reports as pages and the queue read them: reporter trust, the report score, and an
item's reports for its page.

Reporter trust, with a prior of PRIOR_REMOVED removals in PRIOR_DECIDED decided reports:

    trust = (removed + PRIOR_REMOVED) / (decided + PRIOR_DECIDED)

where `decided` counts the items of the reporter's earlier reports that a decision answered
(an approval or a removal) and `removed` those that ended in a removal. A new reporter counts
1/4; one whose reports are always rejected tends to 0 (1/24 after 20), one always right
tends to 1 (21/24 after 20).

Report score of an item, over the distinct reporters of its open reports (all anonymous
reports of an item together count as one reporter, at the prior):

    report_score = 1 - product(1 - trust_i)

bounded in [0, 1), never lower with one more reporter, and one reporter counts once however
many reports they send, at their trust when they first reported the item: intake keeps the
score on the item as a running product (report_score_with), so a report costs the same
however many came before it. The item waits in the queue at the higher of it and its violation
score (moderation/services/queue.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection
from django.db.models import Count, Q

from moderation.models import Decision, Item, Report

PRIOR_REMOVED = 1
PRIOR_DECIDED = 4  # PRIOR_REMOVED removals + 3 rejections
# The key all of an item's anonymous reports share: one reporter, at the prior.
ANONYMOUS = ""


def reporter_trust(*, removed: int, decided: int) -> float:
    """The share of a reporter's decided reports that ended in removal, with the prior."""
    return (removed + PRIOR_REMOVED) / (decided + PRIOR_DECIDED)


def report_score(trusts: Iterable[float]) -> float | None:
    """1 - product(1 - trust) over distinct reporters; None without any."""
    trusts = list(trusts)
    if not trusts:
        return None
    kept = 1.0
    for trust in trusts:
        kept *= 1.0 - min(max(trust, 0.0), 1.0)
    return 1.0 - kept


def report_score_with(score: float | None, trust: float) -> float:
    """The report score once one more distinct reporter, of `trust`, reports the item: the
    running form of report_score (None: no reporter yet). Report intake keeps it on the item
    (Item.report_score), so a report costs the same however many came before it."""
    return 1.0 - (1.0 - (0.0 if score is None else score)) * (1.0 - min(max(trust, 0.0), 1.0))


def reporter_trust_now(*, source_id: int, reporter_id: str) -> float:
    """One reporter's trust from their decided reports (the anonymous key: the prior)."""
    return reporters_trust(source_id=source_id, reporter_ids=[reporter_id])[reporter_id]


def reporters_trust(*, source_id: int, reporter_ids: Iterable[str]) -> dict[str, float]:
    """Each reporter's trust from their decided reports (one query over the reporter
    index); the anonymous key at the prior."""
    ids = sorted(set(reporter_ids))
    named = [reporter for reporter in ids if reporter != ANONYMOUS]
    records = {
        row["reporter_id"]: (row["removed"], row["decided"])
        for row in Report.objects.filter(
            source_id=source_id, reporter_id__in=named, decision__isnull=False
        )
        .order_by()
        .values("reporter_id")
        .annotate(
            decided=Count("item_id", distinct=True),
            removed=Count(
                "item_id", distinct=True, filter=Q(decision__action=Decision.Action.REMOVE)
            ),
        )
    }
    return {
        reporter: reporter_trust(
            removed=records.get(reporter, (0, 0))[0], decided=records.get(reporter, (0, 0))[1]
        )
        for reporter in ids
    }


def open_reporters(item: Item) -> list[str]:
    return list(
        Report.objects.filter(item_id=item.pk, decision__isnull=True)
        .order_by()
        .values_list("reporter_id", flat=True)
        .distinct()
    )


# The item's distinct open reporters, each with their record (decided and removed items of
# their reports in the source), in one statement: intake runs it for every report. Anonymous
# reports ("") share one row and no record. Portable SQL (PostgreSQL and SQLite).
_OPEN_REPORTERS_SQL = f"""
SELECT o.reporter_id,
       COUNT(DISTINCT h.item_id),
       COUNT(DISTINCT CASE WHEN d.action = %s THEN h.item_id END)
FROM (SELECT DISTINCT reporter_id FROM {Report._meta.db_table}
      WHERE item_id = %s AND decision_id IS NULL) o
LEFT JOIN {Report._meta.db_table} h
  ON h.source_id = %s AND h.reporter_id = o.reporter_id AND o.reporter_id <> ''
  AND h.decision_id IS NOT NULL
LEFT JOIN {Decision._meta.db_table} d ON d.id = h.decision_id
GROUP BY o.reporter_id
"""  # noqa: S608


def item_report_score(item: Item) -> float | None:
    """The report score of the item's open reports (None when it has none)."""
    with connection.cursor() as cursor:
        cursor.execute(_OPEN_REPORTERS_SQL, [Decision.Action.REMOVE.value, item.pk, item.source_id])
        rows = cursor.fetchall()
    return report_score(
        reporter_trust(removed=removed, decided=decided) for _, decided, removed in rows
    )


@dataclass(frozen=True)
class ReportRow:
    report: Report
    trust: float

    @property
    def trust_percent(self) -> int:
        return round(self.trust * 100)


@dataclass(frozen=True)
class ReportsPanel:
    count: int
    open: int
    reasons: list[tuple[str, int]]  # most frequent first
    rows: list[ReportRow]  # newest first


# The item page lists this many reports (the counts cover them all).
PANEL_ROWS = 50


def item_reports_panel(item: Item) -> ReportsPanel | None:
    """An item's reports for its page: how many, their reasons, and the latest ones with
    each reporter's trust now. None when nobody reported it."""
    reasons = Counter(
        dict(
            Report.objects.filter(item_id=item.pk)
            .order_by()
            .values("reason")
            .annotate(n=Count("id"))
            .values_list("reason", "n")
        )
    )
    if not reasons:
        return None
    latest = list(
        Report.objects.filter(item_id=item.pk).order_by("-created_at", "-id")[:PANEL_ROWS]
    )
    trust = reporters_trust(
        source_id=item.source_id, reporter_ids=[report.reporter_id for report in latest]
    )
    return ReportsPanel(
        count=sum(reasons.values()),
        open=Report.objects.filter(item_id=item.pk, decision__isnull=True).count(),
        reasons=reasons.most_common(),
        rows=[ReportRow(report, trust[report.reporter_id]) for report in latest],
    )
