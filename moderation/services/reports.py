"""Reports (a second intake): users' reports of items, the reporters' trust learned from
how their earlier reports were decided, the report score that puts a reported item in the
queue, and the reports a decision answers.

The formulas (reporter trust, report score) are in moderation/selectors/reports.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from lib.prepared import PreparedStatement
from moderation.errors import IntakeError
from moderation.intake import ReportPayload
from moderation.models import Decision, Item, Report, Source
from moderation.selectors.reports import (
    PRIOR_DECIDED,
    PRIOR_REMOVED,
    item_report_score,
    open_reporters,
    report_score_with,
    reporter_trust_now,
)
from moderation.services.items import item_ingest
from moderation.services.queue import (
    queue_key_sql,
    queue_key_sync,
    queue_score_for,
    queue_score_sql,
)
from moderation.services.routing import item_route


def _latest_decision(item: Item) -> Decision | None:
    return item.decisions.order_by("-created_at", "-id").first()


def _report_score_after(locked: Item, report: Report) -> float:
    """The locked item's report score with `report` (stored, open): the running score with
    one more distinct reporter at their trust now, or as it was when the reporter already
    counts for the item (one reporter counts once, at their trust when they first reported
    it). An item with a score and no open report (its reports answered) starts again."""
    counted = (
        Report.objects.filter(
            item_id=locked.pk, decision__isnull=True, reporter_id=report.reporter_id
        )
        .exclude(pk=report.pk)
        .exists()
    )
    if counted and locked.report_score is not None:
        return locked.report_score
    trust = reporter_trust_now(source_id=locked.source_id, reporter_id=report.reporter_id)
    return report_score_with(locked.report_score, trust)


def _item_reports_changed(locked: Item, *, source: Source, report: Report) -> None:
    """A new report on the locked item: its report score, and whether it enters the queue.

    Undecided and labeled (or still labeling): it enters the queue as "reported", whatever
    its labels said. Already in the queue or escalated: it keeps its place, at the higher
    score. Received: the dispatch labels it first, and the verdict puts it in the queue
    (moderation/services/verdicts.py). Removed: the removal answers the report; it never
    comes back. Approved by a person: it comes back only when `source.report_return_reporters`
    distinct reporters reported it since (an approval answered every earlier report).
    """
    now = timezone.now()
    entering = False
    if locked.status == Item.Status.DECIDED:
        latest = _latest_decision(locked)
        if latest is not None and latest.action == Decision.Action.REMOVE:
            Report.objects.filter(item_id=locked.pk, decision__isnull=True).update(decision=latest)
            return
        # An approval the system made (an auto-approve band) is the labels' word, not a
        # person's: a report sends the item to a person at once.
        by_person = latest is not None and latest.reviewer_id is not None
        if by_person and len(open_reporters(locked)) < source.report_return_reporters:
            locked.report_score = _report_score_after(locked, report)
            _item_update(locked, ["report_score"])
            return
        entering = True
    elif locked.status in (Item.Status.LABELING, Item.Status.LABELED):
        entering = True
    fields = ["status", "report_score", "queue_score", "queue_key"]
    if entering:
        locked.status = Item.Status.REPORTED
        locked.waiting_since, locked.sla_breached = now, False
        locked.claimed_by_id, locked.claim_expires_at = None, None
        fields += ["waiting_since", "sla_breached", "claimed_by_id", "claim_expires_at"]
    locked.report_score = _report_score_after(locked, report)
    locked.queue_score = queue_score_for(
        status=locked.status,
        violation_score=locked.violation_score,
        report_score=locked.report_score,
    )
    queue_key_sync(locked)
    _item_update(locked, fields)
    item_route(item_id=locked.pk)  # a report (and its reason) is a new fact


# Intake's read of the reported item, locked until the report commits: only the columns a
# report changes or reads (the ORM's full-row SELECT cost more than the rest of a report).
_ITEM_COLUMNS = ("id", "status", "violation_score", "report_score", "sla_breached")


def _item_lock(source: Source, external_id: str) -> Item | None:
    sql = (  # noqa: S608
        "SELECT {columns} FROM {table} WHERE source_id = %s AND external_id = %s"
        # An erased item's external_id is free: a report names the live item.
        " AND erased_at IS NULL"
    ).format(columns=", ".join(_ITEM_COLUMNS), table=Item._meta.db_table)
    if connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    with connection.cursor() as cursor:
        cursor.execute(sql, [source.pk, external_id])
        row = cursor.fetchone()
    if row is None:
        return None
    item = Item(
        source=source, external_id=external_id, **dict(zip(_ITEM_COLUMNS, row, strict=True))
    )
    item.sla_breached = bool(item.sla_breached)  # SQLite answers 0/1
    item._state.adding = False
    item._state.db = connection.alias
    return item


def _item_update(item: Item, fields: list[str]) -> None:
    """One UPDATE of `fields` of the item (names from this module, values as parameters)."""
    quote = connection.ops.quote_name
    values = []
    for name in fields:
        value = getattr(item, name)
        if isinstance(value, datetime):
            value = connection.ops.adapt_datetimefield_value(value)
        values.append(value)
    assignments = ", ".join(f"{quote(name)} = %s" for name in fields)
    sql = f"UPDATE {quote(Item._meta.db_table)} SET {assignments} WHERE id = %s"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, item.pk])


class ReportReceipt(NamedTuple):
    """What report intake answers: the report's id, its item's id and the item's status now
    (the one-statement path reads them from its row, without building models)."""

    id: int
    item_id: int
    item_status: str


def _receipt(report: Report) -> ReportReceipt:
    return ReportReceipt(report.pk, report.item_id, report.item.status)


def report_ingest(
    *, source: Source, payload: ReportPayload, webhook_id: str
) -> tuple[ReportReceipt, bool]:
    """Store a report (and the item it carries, if not yet received), or answer for the one
    already stored under its report_id: the flag says whether it is new. One transaction:
    a refused report stores nothing, not even its item.

    On PostgreSQL a report of a known item is one statement (_report_ingest_statement);
    whatever it cannot settle alone (an unknown item, a concurrent write to the item)
    takes the locking path below, which SQLite always takes."""
    if connection.vendor == "postgresql":
        answer = _report_ingest_statement(source=source, payload=payload, webhook_id=webhook_id)
        if answer is not None:
            return answer
    report, created = _report_ingest_locked(source=source, payload=payload, webhook_id=webhook_id)
    return _receipt(report), created


def _report_ingest_locked(
    *, source: Source, payload: ReportPayload, webhook_id: str
) -> tuple[Report, bool]:
    """The portable path: the item locked, the report inserted (a conflict on (source,
    report_id) answers with the stored one, so a repeat racing itself stores one), the
    item's open reporters with their records, the item's new place; then its routing."""
    with transaction.atomic():
        item = _item_lock(source, payload.external_id)
        if item is None:
            stored = _stored(source, payload.report_id)
            if stored is not None:
                return stored, False
            if payload.item is None:
                raise IntakeError(
                    404,
                    f"no item with external_id {payload.external_id!r}: send the item first, "
                    "or its content fields with the report",
                    field="external_id",
                )
            created, _ = item_ingest(source=source, payload=payload.item, webhook_id=webhook_id)
            if created.external_id != payload.external_id:
                raise IntakeError(
                    409, "webhook-id was already used for another item", field="webhook-id"
                )
            item = _item_lock(source, payload.external_id)
            assert item is not None  # created in this transaction
        report = Report(
            source=source,
            report_id=payload.report_id,
            webhook_id=webhook_id,
            item=item,
            reason=payload.reason,
            reporter_id=payload.reporter_id,
            comment=payload.comment,
            created_at=timezone.now(),
        )
        if not _report_insert(report):
            stored = _stored(source, payload.report_id)
            if stored is None:
                raise IntakeError(409, "report_id conflicts; send it again", field="report_id")
            return stored, False
        _item_reports_changed(item, source=source, report=report)
    return report, True


def _stored(source: Source, report_id: str) -> Report | None:
    return Report.objects.select_related("item").filter(source=source, report_id=report_id).first()


_REPORT_COLUMNS = (
    "source_id",
    "report_id",
    "webhook_id",
    "item_id",
    "reason",
    "reporter_id",
    "comment",
    "created_at",
)
# Built once from the model, never from input: every value is a parameter. A conflict on
# (source, report_id) inserts nothing and raises nothing, so no savepoint is needed.
_REPORT_INSERT_SQL = (  # noqa: S608
    "INSERT INTO {table} ({columns}, decision_id) VALUES ({values}, NULL) "
    "ON CONFLICT (source_id, report_id) DO NOTHING"
).format(
    table=Report._meta.db_table,
    columns=", ".join(_REPORT_COLUMNS),
    values=", ".join(["%s"] * len(_REPORT_COLUMNS)),
)


def _report_insert(report: Report) -> bool:
    """INSERT the report; False when its report_id is stored already."""
    params = [
        report.source_id,
        report.report_id,
        report.webhook_id,
        report.item_id,
        report.reason,
        report.reporter_id,
        report.comment,
        connection.ops.adapt_datetimefield_value(report.created_at),
    ]
    with connection.cursor() as cursor:
        if connection.features.can_return_columns_from_insert:
            cursor.execute(_REPORT_INSERT_SQL + " RETURNING id", params)
            row = cursor.fetchone()
            if row is None:
                return False
            (report.pk,) = row
        else:  # SQLite before 3.35
            cursor.execute(_REPORT_INSERT_SQL, params)
            if cursor.rowcount != 1:
                return False
            report.pk = cursor.lastrowid
    report._state.adding = False
    report._state.db = connection.alias
    return True


# A report of a known item on PostgreSQL, in one statement and one round trip (autocommit):
# the item read with its row version (xmin), the report_id looked up, the item's standing
# decision, whether the reporter already counts for the item and, if not, their record (the
# trust and running report score of moderation/selectors/reports.py: a fixed number of index
# probes, however often the item was reported before), then the item UPDATEd only if its row
# is still the version read, and the report INSERTed only from that UPDATE's row. So the statement
# stores both or nothing: a write to the item since the read (another report, a decision,
# an undo, labels) leaves the UPDATE without a row and the report unstored, and the locking
# path does it again; the same report_id stored meanwhile is a unique violation that undoes
# the UPDATE. The steps are _item_reports_changed's: "answered" (a removed item: the removal
# answers the report), "counted" (approved by a person, not yet enough new reporters: the
# score only), "entering" (into the queue as reported), "placed" (the higher score).
# queue_score_sql and queue_key_sql are the SQL twins of queue_score_for and queue_key;
# moderation/tests/test_reports_sql.py holds each step equal to the locking path on PostgreSQL.
# score and plan are MATERIALIZED, computed once: inlined (a CTE used once is, by default), the
# step's CASE and the score's (each with its subqueries) were copied into every SET of the
# UPDATE that names them, and PostgreSQL set up each copy on every execution (~10 copies of
# the reporters' COUNT, 5 of the reporter's probe), a fifth of the statement's CPU; plan's
# queue_score is the item's new queue score when it is placed or entering.
# The UPDATE finds the row read by its place (ctid), not through the primary key: each report
# leaves a version of the item in every index, and the version read is the only one it may
# write (a newer one, at another place and with another xmin, matches neither).
_REPORT_STATEMENT = """
WITH it AS (
    SELECT id, ctid AS at, xmin AS seen, status, violation_score, report_score
    FROM {item}
    WHERE source_id = %(source_id)s AND external_id = %(external_id)s AND erased_at IS NULL
),
dup AS (
    SELECT r.id, r.item_id, (SELECT status FROM {item} WHERE id = r.item_id) AS status
    FROM {report} r
    WHERE r.source_id = %(source_id)s AND r.report_id = %(report_id)s
),
standing AS (
    SELECT d.id, d.action, d.reviewer_id
    FROM {decision} d
    WHERE d.item_id = (SELECT id FROM it WHERE status = '{decided}')
    ORDER BY d.created_at DESC, d.id DESC
    LIMIT 1
),
counted AS (
    SELECT EXISTS (
        SELECT FROM {report} r
        WHERE r.item_id = (SELECT id FROM it) AND r.decision_id IS NULL
          AND r.reporter_id = %(reporter_id)s
    ) AS counted
),
record AS (
    SELECT (
            COUNT(DISTINCT h.item_id) FILTER (WHERE d.action = '{remove}') + {prior_removed}
        )::float8 / (COUNT(DISTINCT h.item_id) + {prior_decided}) AS trust
    FROM {report} h JOIN {decision} d ON d.id = h.decision_id
    WHERE h.source_id = %(source_id)s AND h.reporter_id = %(reporter_id)s
      AND h.reporter_id <> ''
),
score AS MATERIALIZED (
    SELECT CASE WHEN counted.counted AND it.report_score IS NOT NULL THEN it.report_score
        ELSE 1.0 - (1.0 - COALESCE(it.report_score, 0.0)) * (1.0 - record.trust)
        END AS report_score
    FROM it CROSS JOIN counted CROSS JOIN record
),
plan AS MATERIALIZED (
    SELECT it.id, it.at, it.seen, standing.id AS standing_id, score.report_score,
        CASE
            WHEN it.status = '{decided}' AND standing.action = '{remove}' THEN 'answered'
            WHEN it.status = '{decided}' AND standing.reviewer_id IS NOT NULL
                 AND 1 + (
                     SELECT COUNT(*) FROM (
                         SELECT DISTINCT r.reporter_id FROM {report} r
                         WHERE r.item_id = it.id AND r.decision_id IS NULL
                           AND r.reporter_id <> %(reporter_id)s
                         LIMIT %(return_reporters)s
                     ) AS others
                 ) < %(return_reporters)s THEN 'counted'
            WHEN it.status IN ('{decided}', '{labeling}', '{labeled}') THEN 'entering'
            ELSE 'placed'
        END AS step,
        CASE WHEN it.status IN ('{decided}', '{labeling}', '{labeled}') THEN {entering_score}
            ELSE {placed_score} END AS queue_score
    FROM it CROSS JOIN score LEFT JOIN standing ON TRUE
    WHERE NOT EXISTS (SELECT FROM dup)
),
upd AS (
    UPDATE {item} i SET
        status = CASE WHEN p.step = 'entering' THEN '{reported}' ELSE i.status END,
        report_score = CASE WHEN p.step = 'answered' THEN i.report_score ELSE p.report_score END,
        queue_score = CASE WHEN p.step IN ('placed', 'entering') THEN p.queue_score
            ELSE i.queue_score END,
        queue_key = CASE WHEN p.step IN ('placed', 'entering') THEN {queue_key}
            ELSE i.queue_key END,
        waiting_since = CASE WHEN p.step = 'entering' THEN %(now)s ELSE i.waiting_since END,
        sla_breached = CASE WHEN p.step = 'entering' THEN FALSE ELSE i.sla_breached END,
        claimed_by_id = CASE WHEN p.step = 'entering' THEN NULL ELSE i.claimed_by_id END,
        claim_expires_at = CASE
            WHEN p.step = 'entering' THEN NULL ELSE i.claim_expires_at END
    FROM plan p
    WHERE i.ctid = p.at AND i.xmin = p.seen
    RETURNING i.id, i.status, p.step, p.standing_id
),
ins AS (
    INSERT INTO {report}
        (source_id, report_id, webhook_id, item_id, reason, reporter_id, comment, created_at,
         decision_id)
    SELECT %(source_id)s, %(report_id)s, %(webhook_id)s, u.id, %(reason)s, %(reporter_id)s,
        %(comment)s, %(now)s, CASE WHEN u.step = 'answered' THEN u.standing_id END
    FROM upd u
    RETURNING id
),
answered AS (
    UPDATE {report} SET decision_id = (SELECT standing_id FROM upd)
    WHERE item_id = (SELECT id FROM upd WHERE step = 'answered') AND decision_id IS NULL
)
SELECT (SELECT id FROM it), (SELECT id FROM ins), (SELECT status FROM upd),
    (SELECT step FROM upd), dup.id, dup.item_id, dup.status
FROM (SELECT) AS one LEFT JOIN dup ON TRUE
""".format(  # noqa: S608 - names and constants from the models, every value a parameter
    item=Item._meta.db_table,
    report=Report._meta.db_table,
    decision=Decision._meta.db_table,
    decided=Item.Status.DECIDED,
    labeling=Item.Status.LABELING,
    labeled=Item.Status.LABELED,
    reported=Item.Status.REPORTED,
    remove=Decision.Action.REMOVE,
    prior_removed=PRIOR_REMOVED,
    prior_decided=PRIOR_DECIDED,
    placed_score=queue_score_sql(
        status="it.status", violation_score="it.violation_score", report_score="score.report_score"
    ),
    entering_score=queue_score_sql(
        status=f"'{Item.Status.REPORTED}'",
        violation_score="it.violation_score",
        report_score="score.report_score",
    ),
    # Entering, the item's SLA flag is cleared; placed, the row's own decides.
    queue_key=queue_key_sql(
        score="p.queue_score", breached="(p.step = 'placed' AND i.sla_breached)"
    ),
)


def _report_ingest_statement(
    *, source: Source, payload: ReportPayload, webhook_id: str
) -> tuple[ReportReceipt, bool] | None:
    """A report of a known item in one statement (_REPORT_STATEMENT), or None when the
    locking path must decide: the item unknown (a 404, or the report creates it), or
    written by someone else between the statement's read and its write."""
    params = {
        "source_id": source.pk,
        "external_id": payload.external_id,
        "report_id": payload.report_id,
        "webhook_id": webhook_id,
        "reason": payload.reason,
        "reporter_id": payload.reporter_id,
        "comment": payload.comment,
        "now": timezone.now(),
        "return_reporters": source.report_return_reporters,
    }
    try:
        row = _STATEMENT.fetchone(params)
    except IntegrityError:
        return None  # the same report_id, stored since the statement began
    item_id, report_pk, status, step, stored_pk, stored_item, stored_status = row
    if stored_pk is not None:
        return ReportReceipt(stored_pk, stored_item, stored_status), False
    if report_pk is None:
        return None
    if step in ("entering", "placed"):
        item_route(item_id=item_id)  # a report (and its reason) is a new fact
    return ReportReceipt(report_pk, item_id, status), True


# The statement is PREPAREd once per database session and EXECUTEd with its values
# (lib/prepared.py): its plan (a dozen joins) cost more to make than to run.
_STATEMENT = PreparedStatement(
    "moderation_report_ingest",
    _REPORT_STATEMENT,
    (
        ("source_id", "bigint"),
        ("external_id", "text"),
        ("report_id", "text"),
        ("webhook_id", "text"),
        ("reason", "text"),
        ("reporter_id", "text"),
        ("comment", "text"),
        ("now", "timestamptz"),
        ("return_reporters", "integer"),
    ),
    # The report webhook's one statement: it is the request's health check too.
    checks_session=True,
)


def reports_answer(*, item: Item, decision_fields: dict) -> list[int]:
    """For a decision about to be made on the locked item: the open reports an approval or
    a removal answers (their report ids go into the decision's fields); the rows to mark
    with reports_answered once the decision exists."""
    if decision_fields.get("action") not in (Decision.Action.APPROVE, Decision.Action.REMOVE):
        return []
    rows = list(
        Report.objects.filter(item_id=item.pk, decision__isnull=True)
        .order_by("created_at", "id")
        .values_list("pk", "report_id")
    )
    decision_fields["report_ids"] = [report_id for _, report_id in rows]
    return [pk for pk, _ in rows]


def reports_answered(*, item: Item, decision: Decision, report_pks: list[int]) -> None:
    """The decision answers those reports (the locked item has none open now); an undo
    opens again the reports the undone decision answered."""
    if report_pks:
        Report.objects.filter(pk__in=report_pks).update(decision=decision)
        item.report_score = None
        return
    if decision.action != Decision.Action.UNDO or decision.undoes_id is None:
        return
    if Report.objects.filter(decision_id=decision.undoes_id).update(decision=None):
        item.report_score = item_report_score(item)
