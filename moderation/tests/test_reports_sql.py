"""Report intake's one statement (moderation/services/reports.py, PostgreSQL): the README's
formula on constructed histories on both databases, each step equal to the locking path,
concurrent writes to the reported item, a lost prepared statement, and the routing re-run."""

from __future__ import annotations

import math
import threading
import time

import pytest
from django.contrib.auth.models import Group
from django.db import connection, connections, transaction
from django.utils import timezone

from moderation.intake import ReportPayload
from moderation.models import Decision, Item, Report, queue_key
from moderation.selectors.reports import report_score, reporter_trust
from moderation.services import reports as report_services
from moderation.services.decisions import decision_record
from moderation.services.reports import report_ingest
from moderation.services.routing_rules import queue_save, rule_save
from moderation.tests.factories import ItemFactory, UserFactory, reason_id

pytestmark = pytest.mark.django_db

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the one-statement path is PostgreSQL's"
)
NEW = reporter_trust(removed=0, decided=0)


def readme_score(records: list[tuple[int, int]]) -> float:
    """The README's formula, written out: trust = (removed + 1) / (decided + 4) per distinct
    reporter, report_score = 1 - product(1 - trust)."""
    return 1 - math.prod(1 - (removed + 1) / (decided + 4) for removed, decided in records)


def payload(report_id: str, external_id: str = "target", reporter: str = "", **kw):
    return ReportPayload(
        report_id=report_id, external_id=external_id, reason="spam", reporter_id=reporter, **kw
    )


def labeled(source, external_id: str, **fields):
    defaults = {"status": Item.Status.LABELED, "violation_score": 0.1, "queue_score": None}
    return ItemFactory(source=source, external_id=external_id, **{**defaults, **fields})


def history(source, person, reporter: str, removed: int, approved: int) -> None:
    """`reporter`'s record: reports of `removed + approved` items, each decided."""
    for n in range(removed + approved):
        action = "remove" if n < removed else "approve"
        item = labeled(source, f"{reporter}-old-{n}")
        Report.objects.create(
            source=source, report_id=f"{reporter}-{n}", item=item, reason="x", reporter_id=reporter
        )
        decision_record(
            item=item,
            reviewer=person,
            action=action,
            reason_id=reason_id(action) if action == "remove" else None,
        )


# --- the formula, on both databases --------------------------------------------------------


def test_the_stored_score_is_the_readme_formula_on_constructed_histories(source):
    person = UserFactory()
    history(source, person, "alice", removed=2, approved=1)
    history(source, person, "bob", removed=0, approved=5)
    history(source, person, "carol", removed=4, approved=0)
    item = labeled(source, "target")
    sent = [("alice", "r1"), ("bob", "r2"), ("alice", "r3"), ("", "r4"), ("", "r5")]
    sent += [("carol", "r6"), ("dave", "r7")]
    for reporter, report_id in sent:
        _, created = report_ingest(
            source=source, payload=payload(report_id, reporter=reporter), webhook_id=report_id
        )
        assert created
    item.refresh_from_db()
    # alice 2 of 3, bob 0 of 5, carol 4 of 4, dave new, the anonymous ones as one new.
    expected = readme_score([(2, 3), (0, 5), (4, 4), (0, 0), (0, 0)])
    assert item.report_score == pytest.approx(expected, rel=1e-12)
    assert item.report_score == pytest.approx(
        report_score(
            reporter_trust(removed=removed, decided=decided)
            for removed, decided in [(2, 3), (0, 5), (4, 4), (0, 0), (0, 0)]
        ),
        rel=1e-12,
    )
    assert item.status == Item.Status.REPORTED
    assert item.queue_score == pytest.approx(expected, rel=1e-12)
    assert Report.objects.filter(item=item).count() == len(sent)


# --- each step, the statement against the locking path (PostgreSQL) -------------------------


def _decided(item: Item, action: str, reviewer) -> None:
    Decision.objects.create(item=item, action=action, reviewer=reviewer)
    Item.objects.filter(pk=item.pk).update(
        status=Item.Status.DECIDED, decided_action=action, queue_score=None, queue_key=None
    )


SITUATIONS = {
    "labeled": {},
    "labeling": {"status": Item.Status.LABELING},
    "received": {"status": Item.Status.RECEIVED, "violation_score": None},
    "flagged above": {"status": Item.Status.FLAGGED, "violation_score": 0.93},
    "flagged below": {"status": Item.Status.FLAGGED, "violation_score": 0.12},
    "flagged past SLA": {
        "status": Item.Status.FLAGGED,
        "violation_score": 0.12,
        "sla_breached": True,
    },
    "flagged, claimed": {"status": Item.Status.FLAGGED, "violation_score": 0.7, "claimed": True},
    "escalated": {"status": Item.Status.ESCALATED, "violation_score": 0.3},
    "audit": {"status": Item.Status.AUDIT, "violation_score": 0.05},
    "failed": {"status": Item.Status.FAILED, "violation_score": None},
    "unrouted": {"status": Item.Status.UNROUTED, "violation_score": None},
    "rereview": {"status": Item.Status.REREVIEW, "violation_score": None},
    "reported before": {"reported_by": ["zoe"]},
    "approved, too few new": {"decided": ("approve", True), "reported_by": ["zoe"]},
    "approved, enough new": {"decided": ("approve", True), "reported_by": ["zoe", "yan"]},
    "approved by the system": {"decided": ("approve", False)},
    "removed": {"decided": ("remove", True), "reported_by": ["zoe"]},
}


def _situation(source, external_id: str, person, spec: dict) -> Item:
    fields = {k: v for k, v in spec.items() if k not in ("claimed", "reported_by", "decided")}
    item = labeled(source, external_id, **fields)
    if spec.get("claimed"):
        Item.objects.filter(pk=item.pk).update(claimed_by=person)
    if "decided" in spec:
        action, by_person = spec["decided"]
        _decided(item, action, person if by_person else None)
    for n, reporter in enumerate(spec.get("reported_by", [])):
        # Reports sent after the decision: still open (a removal's are answered below).
        decision = item.decisions.first() if spec.get("decided", ("",))[0] == "remove" else None
        Report.objects.create(
            source=source,
            report_id=f"{external_id}-{n}",
            item=item,
            reason="spam",
            reporter_id=reporter,
            decision=decision,
        )
    if spec.get("reported_by") and "decided" not in spec:
        Item.objects.filter(pk=item.pk).update(
            status=Item.Status.REPORTED,
            report_score=NEW,
            queue_score=NEW,
            queue_key=queue_key(NEW, breached=False),
        )
    elif spec.get("reported_by") and spec["decided"][0] == "approve":
        Item.objects.filter(pk=item.pk).update(report_score=NEW)
    return item


def _state(item: Item) -> dict:
    item.refresh_from_db()
    reports = list(
        Report.objects.filter(item=item).order_by("id").values_list("reporter_id", "decision_id")
    )
    return {
        "status": item.status,
        "report_score": item.report_score,
        "queue_score": item.queue_score,
        "queue_key": item.queue_key,
        "sla_breached": item.sla_breached,
        "claimed": item.claimed_by_id is not None,
        "open reports": [reporter for reporter, decision in reports if decision is None],
        "answered by the standing removal": [
            reporter
            for reporter, decision in reports
            if decision is not None and decision == item.decisions.last().pk
        ]
        if item.decided_action == "remove"
        else [],
    }


def _close(a: dict, b: dict) -> bool:
    for key in a:
        if isinstance(a[key], float) and isinstance(b[key], float):
            if a[key] != pytest.approx(b[key], rel=1e-12):
                return False
        elif a[key] != b[key]:
            return False
    return True


@postgresql_only
@pytest.mark.parametrize("name", sorted(SITUATIONS))
def test_each_step_of_the_statement_equals_the_locking_path(source, name):
    person = UserFactory()
    history(source, person, "alice", removed=1, approved=2)
    by_statement = _situation(source, "one", person, SITUATIONS[name])
    by_lock = _situation(source, "two", person, SITUATIONS[name])
    answer = report_services._report_ingest_statement(
        source=source, payload=payload("s1", "one", "alice"), webhook_id="w1"
    )
    assert answer is not None, "the statement settled it alone"
    report, created = answer
    assert created and report.item_id == by_statement.pk
    report_services._report_ingest_locked(
        source=source, payload=payload("s2", "two", "alice"), webhook_id="w2"
    )
    one, two = _state(by_statement), _state(by_lock)
    assert _close(one, two), (one, two)
    assert report.item_status == one["status"]


@postgresql_only
def test_the_same_report_id_again_is_answered_by_the_statement(source):
    item = labeled(source, "target")
    first, created = report_ingest(source=source, payload=payload("r1"), webhook_id="w1")
    answer = report_services._report_ingest_statement(
        source=source, payload=payload("r1", reporter="someone else"), webhook_id="w2"
    )
    assert answer is not None
    again, created_again = answer
    assert created and not created_again
    assert again == (first.id, item.pk, "reported")
    assert Report.objects.count() == 1


@postgresql_only
def test_a_lost_prepared_statement_is_prepared_again(source):
    labeled(source, "target")
    report_ingest(source=source, payload=payload("r1", reporter="a"), webhook_id="w1")
    with connection.cursor() as cursor:
        cursor.execute(f"DEALLOCATE {report_services._STATEMENT.name}")
    # This once unprepared (in the caller's transaction, which stays usable), then again.
    for n in (2, 3):
        _, created = report_ingest(
            source=source, payload=payload(f"r{n}", reporter=f"u{n}"), webhook_id=f"w{n}"
        )
        assert created
    assert Item.objects.get(external_id="target").report_score == pytest.approx(
        report_score([NEW] * 3)
    )


# --- concurrent writes to the reported item (PostgreSQL, real transactions) ------------------


def _hold_then_commit(work, done: dict) -> threading.Thread:
    """In another connection: `work()` in a transaction kept open until a second backend of
    this database waits for a lock (the report behind it), then committed."""

    def run():
        try:
            with transaction.atomic():
                done["result"] = work()
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    with connection.cursor() as cursor:
                        cursor.execute(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname ="
                            " current_database() AND wait_event_type = 'Lock'"
                        )
                        if cursor.fetchone()[0]:
                            done["waited"] = True
                            break
                    time.sleep(0.02)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _started(done: dict) -> None:
    deadline = time.monotonic() + 20
    while "result" not in done and time.monotonic() < deadline:
        time.sleep(0.01)


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_removal_committed_while_a_report_waits_answers_it(source):
    person = UserFactory()
    item = labeled(source, "target")
    report_ingest(source=source, payload=payload("r1", reporter="alice"), webhook_id="w1")
    item.refresh_from_db()
    done: dict = {}
    holder = _hold_then_commit(
        lambda: decision_record(
            item=item, reviewer=person, action="remove", reason_id=reason_id("remove")
        ),
        done,
    )
    _started(done)
    report, created = report_ingest(
        source=source, payload=payload("r2", reporter="bob"), webhook_id="w2"
    )
    holder.join()
    assert done.get("waited"), "the report waited for the removal's lock"
    removal = done["result"]
    item.refresh_from_db()
    assert created and report.item_status == Item.Status.DECIDED
    assert item.status == Item.Status.DECIDED and item.queue_score is None
    assert set(Report.objects.values_list("decision_id", flat=True)) == {removal.pk}


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_two_reporters_at_once_both_count(source):
    item = labeled(source, "target")
    done: dict = {}
    holder = _hold_then_commit(
        lambda: report_ingest(source=source, payload=payload("r1", reporter="a"), webhook_id="w1"),
        done,
    )
    _started(done)
    report_ingest(source=source, payload=payload("r2", reporter="b"), webhook_id="w2")
    holder.join()
    assert done.get("waited")
    item.refresh_from_db()
    assert item.report_score == pytest.approx(report_score([NEW, NEW]))
    assert Report.objects.count() == 2


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_the_same_report_id_at_once_is_stored_once(source):
    item = labeled(source, "target")
    done: dict = {}
    holder = _hold_then_commit(
        lambda: report_ingest(source=source, payload=payload("r1", reporter="a"), webhook_id="w1"),
        done,
    )
    _started(done)
    again, created = report_ingest(
        source=source, payload=payload("r1", reporter="a"), webhook_id="w2"
    )
    holder.join()
    assert done.get("waited")
    first, first_created = done["result"]
    assert first_created and not created
    assert (again.id, again.item_id) == (first.id, item.pk)
    assert Report.objects.count() == 1
    item.refresh_from_db()
    assert item.report_score == pytest.approx(NEW)


# --- routing ---------------------------------------------------------------------------------


def test_a_report_routes_its_item_again(source):
    admin = UserFactory(is_staff=True, reviewer=False)
    team = Group.objects.create(name="Harassment team")
    queue = queue_save(actor=admin, queue=None, name="Harassment", team_id=team.pk)
    rule_save(
        actor=admin,
        rule=None,
        name="harassment",
        queue=queue,
        conditions={"report_reasons": ["harassment"]},
    )
    item = labeled(source, "target")
    report_ingest(
        source=source,
        payload=ReportPayload(report_id="r1", external_id="target", reason="harassment"),
        webhook_id="w1",
    )
    item.refresh_from_db()
    assert (item.status, item.queue_id) == (Item.Status.REPORTED, queue.pk)


# --- a running score: a report costs the same however often the item was reported ---------


@pytest.mark.parametrize("path", ["statement", "locking"])
def test_a_reporter_counts_at_their_trust_when_they_reported(source, path):
    """The score is kept as a running product: an earlier reporter's record changing later
    does not re-weigh their report of this item (and a report reads no earlier reporter's
    record, so its cost does not grow with the item's reports)."""
    if path == "statement" and connection.vendor != "postgresql":
        pytest.skip("the one-statement path is PostgreSQL's")
    ingest = (
        report_services._report_ingest_statement
        if path == "statement"
        else report_services._report_ingest_locked
    )
    person = UserFactory()
    item = labeled(source, "target")
    assert ingest(source=source, payload=payload("r1", reporter="alice"), webhook_id="w1")
    # alice's record grows after her report of the target: 3 removals of 3.
    history(source, person, "alice", removed=3, approved=0)
    assert ingest(source=source, payload=payload("r2", reporter="bob"), webhook_id="w2")
    item.refresh_from_db()
    assert item.report_score == pytest.approx(readme_score([(0, 0), (0, 0)]), rel=1e-12)
    # alice again: she counts once, as she did.
    assert ingest(source=source, payload=payload("r3", reporter="alice"), webhook_id="w3")
    item.refresh_from_db()
    assert item.report_score == pytest.approx(readme_score([(0, 0), (0, 0)]), rel=1e-12)
    # A new reporter counts at today's record.
    history(source, person, "carol", removed=2, approved=0)
    assert ingest(source=source, payload=payload("r4", reporter="carol"), webhook_id="w4")
    item.refresh_from_db()
    assert item.report_score == pytest.approx(readme_score([(0, 0), (0, 0), (2, 2)]), rel=1e-12)


def _report_buffers(source, report_id: str, reporter: str) -> int:
    """Shared buffers the report statement touches (EXPLAIN ANALYZE runs it)."""
    params = {
        "source_id": source.pk,
        "external_id": "target",
        "report_id": report_id,
        "webhook_id": report_id,
        "reason": "spam",
        "reporter_id": reporter,
        "comment": "",
        "now": timezone.now(),
        "return_reporters": source.report_return_reporters,
    }
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE moderation_report")
        cursor.execute(
            "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + report_services._REPORT_STATEMENT, params
        )
        plan = cursor.fetchone()[0]
    plan = plan[0] if isinstance(plan, list) else plan
    return plan["Plan"]["Shared Hit Blocks"] + plan["Plan"]["Shared Read Blocks"]


@postgresql_only
def test_a_reports_reads_do_not_grow_with_the_items_earlier_reports(source):
    """Counted in buffers, not time: the 402nd report of an item reads little more than its
    2nd (a deeper index), where the statement that re-read every open reporter's record
    read ~2 buffers per earlier reporter (800 more here)."""
    item = labeled(source, "target")
    report_ingest(source=source, payload=payload("r0", reporter="u0"), webhook_id="w0")
    second = _report_buffers(source, "probe-1", "p1")
    Report.objects.bulk_create(
        Report(source=source, report_id=f"b{n}", item=item, reason="spam", reporter_id=f"b{n}")
        for n in range(400)
    )
    later = _report_buffers(source, "probe-2", "p2")
    assert later < 2 * second, (second, later)


def _relation_nodes(plan: dict, relation: str) -> int:
    """The plan's nodes that read or write `relation` (subplans and CTEs included)."""
    own = 1 if plan.get("Relation Name") == relation else 0
    return own + sum(_relation_nodes(child, relation) for child in plan.get("Plans", []))


@postgresql_only
def test_the_statement_plans_each_of_its_reads_once(source):
    """Seven places in the statement name the reports table (the repeat, the reporter's open
    report, their record, the item's other open reporters, the insert, the answered update
    and its scan); each is planned, and so set up on every execution, once. With the step and
    the score inlined into the UPDATE, the plan held ~20 (a copy in each SET naming them)."""
    labeled(source, "target")
    params = {
        "source_id": source.pk,
        "external_id": "target",
        "report_id": "probe",
        "webhook_id": "probe",
        "reason": "spam",
        "reporter_id": "p1",
        "comment": "",
        "now": timezone.now(),
        "return_reporters": source.report_return_reporters,
    }
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + report_services._REPORT_STATEMENT, params)
        plan = cursor.fetchone()[0]
    plan = plan[0] if isinstance(plan, list) else plan
    assert _relation_nodes(plan["Plan"], Report._meta.db_table) <= 7
