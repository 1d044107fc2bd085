"""Admins' pages benchmark: the dashboard, a labeler's quality page and its re-review count,
rendered through the real views, next to the plain SQL doing the same counting.

    .venv/bin/python bench/admin_pages.py [--sizes 10000,200000] [--requests 30] [--budget 60]
    .venv/bin/python bench/admin_pages.py --sizes 10000,1000000      # bigger

For each size, from scratch:

1. Creates the PostgreSQL database `bench_admin_<pid>` (127.0.0.1:5432, user postgres; no
   other database is touched) and migrates it; it is dropped at the end (unless --keep).
2. Seeds N items server-side, INSERT ... SELECT over generate_series (no per-row round
   trips), ids growing with time over the last 100 days (90 % within 90 days, ~1 % today,
   ~7 % this week). One labeler ("spam", min confidence 0.6, auto-approve band 0.95)
   routed to both sources; version 1 published 200 days ago, version 2 a moment ago (so
   every decided item is a re-review candidate). Every item has one done label of v1,
   confidences 0.500-0.999 in steps of 0.001 (as the fake API answers). By n % 100:
   0-19 "1" at 0.6+ (flagged; decided by one of 5 reviewers, 80 % removed, or waiting in
   the queue among the newest 1,500 items), 20-24 "0" at 0.95+ (auto-approved: a decision
   with no reviewer), 25-29 "1" below 0.6 (not flagged), 95-96 audit samples (decided, 20 %
   removed, or waiting among the newest), the rest "0" not flagged. One flagged item in
   500 has an approval undone before its final decision. Every decision has labeler_versions
   [v1] and a callback delivery (1 in 200 failed, the newest pending). VACUUM ANALYZE.
3. Logs a staff user in with Django's test Client (DEBUG off, persistent connections, the
   product's settings and middleware) and times each page: 2 warm-up requests, then up to
   R requests, stopping early (at least 3) once a page has used its time budget.
4. Beside each page, its baseline: the best plain SQL doing the same counting, run R times
   alone (for the dashboard one statement with every count; for quality one aggregate of
   labeled / flagged / decided / removed per version; for re-review a count(*) of the
   current decisions containing an older version, jsonb @>). The baselines' figures are
   checked against the product's own selectors before timing.
5. Prints a table (page, size, p50, p99, the Python side's CPU time (p50: the bench
   process's own, which other load inflates less than the wall clock), baseline p50,
   ratio, queries per request, SQL time inside one request, load average) and, at the
   smallest size, a profile of one request per page; at the largest, the EXPLAIN (ANALYZE,
   BUFFERS) of each page's slowest query.

No targets, no exit status: numbers to read.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and bench/queue.py would
# stand in for the standard library's `queue` (which Django's imports need).
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import cProfile  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402
import pstats  # noqa: E402
import re  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402
from datetime import timedelta  # noqa: E402

from bench import pgdb  # noqa: E402

DB_NAME = f"bench_admin_{os.getpid()}"
pgdb.use_database(DB_NAME)
from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.urls import reverse  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.pgdb import load, median, percentile, timed  # noqa: E402
from config import wsgi  # noqa: E402, F401 - the process as a gunicorn worker's: the app loaded
from labelers import selectors  # noqa: E402
from labelers.dashboard_rollups import dashboard_rollups_refresh  # noqa: E402
from labelers.models import Label, Labeler, LabelerVersion  # noqa: E402
from labelers.quality.loaders import labeler_report, labeler_report_raw  # noqa: E402
from labelers.quality.rollups import quality_rollups_refresh  # noqa: E402
from lib.days import day_start  # noqa: E402
from moderation.models import AUDIT_QUEUE_SCORE, IN_QUEUE, Source, hash_token  # noqa: E402
from moderation.services.figures import (  # noqa: E402
    decided_rollups_refresh,
    item_figures_changed,
)
from moderation.services.queue import items_sla_refresh  # noqa: E402

WARMUP = 2
SEEDED = "seeded by bench/admin_pages.py"
MIN_REQUESTS = 3
# The newest items hold the queue: the flagged and audit ones among them are still waiting.
WAITING_WINDOW = 1500
REVIEWERS = 5
MIN_CONFIDENCE = 0.6
QUALITY_DAYS = 90
PAGES = ("dashboard", "quality", "rereview")
# The profile's second view: the project's own functions.
PROJECT_CODE = r"/(labelers|moderation)/"

# One row per item: what it is (kind), what v1 answered, where it stands.
STAGE_SQL = """
CREATE TEMP TABLE bench_seed AS
SELECT n, at, kind, label, conf,
       CASE WHEN kind IN ('flag', 'audit') AND n > %(count)s - %(window)s
            THEN CASE kind WHEN 'flag' THEN 'flagged' ELSE 'audit' END
            WHEN kind IN ('flag', 'audit', 'auto') THEN 'decided'
            ELSE 'labeled' END AS status,
       LEAST(at + interval '20 minutes', now()) AS decided_at
FROM generate_series(1::bigint, %(count)s) AS n
CROSS JOIN LATERAL (
    SELECT now() - interval '1 minute'
               - (%(count)s - n)::float8 / %(count)s * interval '100 days' AS at,
           CASE WHEN n %% 100 < 20 THEN 'flag'
                WHEN n %% 100 < 25 THEN 'auto'
                WHEN n %% 100 < 30 THEN 'low1'
                WHEN n %% 100 IN (95, 96) THEN 'audit'
                ELSE 'zero' END AS kind,
           abs(hashtext(n::text)) %% 1000 AS h
) AS shape
CROSS JOIN LATERAL (
    SELECT CASE WHEN kind IN ('flag', 'low1') THEN '1' ELSE '0' END AS label,
           CASE kind WHEN 'flag' THEN 0.6 + (h %% 400)::float8 / 1000
                     WHEN 'auto' THEN 0.95 + (h %% 50)::float8 / 1000
                     WHEN 'low1' THEN 0.5 + (h %% 100)::float8 / 1000
                     ELSE 0.5 + (h %% 450)::float8 / 1000 END AS conf
) AS answer
"""

ITEMS_SQL = """
INSERT INTO moderation_item (
    legal_hold, legal_hold_reason, language,
    id, source_id, external_id, webhook_id, content_text, content_image, content_image_type,
    content_video, content_video_type, content_hash, metadata, received_at, waiting_since,
    revision, status, violation_score, queue_score, queue_key, sla_breached, flagged_at,
    verdict_versions, decided_at
)
SELECT false, '', '',
       n, src.ids[1 + n %% 2], 'ext-' || n, 'wh-' || n, 'item ' || n, '', '', '', '',
       md5(n::text), '{}'::jsonb, at, at, 1, status,
       CASE label WHEN '1' THEN conf ELSE 1 - conf END,
       q.score,
       -(4.0 * LEAST(floor(round((q.score * 10)::numeric, 9)), 9)::float8 + q.score),
       false,
       CASE WHEN kind = 'flag' THEN at + interval '5 seconds' END,
       jsonb_build_array(%(v1)s::int),
       CASE WHEN status = 'decided' THEN decided_at END
FROM bench_seed
CROSS JOIN (SELECT array_agg(id ORDER BY id) AS ids FROM moderation_source) AS src
CROSS JOIN LATERAL (
    SELECT CASE status WHEN 'flagged' THEN conf WHEN 'audit' THEN %(audit_score)s END AS score
) AS q
"""

LABELS_SQL = """
INSERT INTO labelers_label (
    item_id, revision, labeler_version_id, status, label, confidence, violation_score,
    compute_time, model, latency_ms, attempts, cache_hit, error, content_hash, worker,
    enqueued_at, bulk, created_at, labeled_at
)
SELECT n, 1, %(v1)s, 'done', label, conf, CASE label WHEN '1' THEN conf ELSE 1 - conf END,
       0.3, 'cope-latest', 150 + (n * 31) %% 400, 1, n %% 50 = 0, '', md5(n::text), '',
       at, false, at, at + interval '3 seconds'
FROM bench_seed
"""

# A decided item's history: for one flagged item in 500, an approval undone first.
UNDONE_SQL = """
INSERT INTO moderation_decision (
    item_id, revision, reviewer_id, action, reason, note, created_at, status_before,
    labeler_versions, report_ids
)
SELECT n, 1, (%(reviewers)s::int[])[1 + n %% %(nreviewers)s], 'approve', 'bench undone', '',
       decided_at - interval '10 minutes', 'flagged', jsonb_build_array(%(v1)s::int), '[]'::jsonb
FROM bench_seed WHERE kind = 'flag' AND status = 'decided' AND n %% 500 = 0
ORDER BY decided_at;
INSERT INTO moderation_decision (
    item_id, revision, reviewer_id, action, reason, note, created_at, status_before,
    labeler_versions, undoes_id, report_ids
)
SELECT item_id, 1, reviewer_id, 'undo', '', '', created_at + interval '1 minute', 'decided',
       labeler_versions, id, '[]'::jsonb
FROM moderation_decision WHERE reason = 'bench undone' ORDER BY id
"""

DECISIONS_SQL = """
INSERT INTO moderation_decision (
    item_id, revision, reviewer_id, action, reason, note, created_at, status_before,
    labeler_versions, report_ids
)
SELECT n, 1,
       CASE WHEN kind = 'auto' THEN NULL
            ELSE (%(reviewers)s::int[])[1 + n %% %(nreviewers)s] END,
       CASE WHEN kind = 'auto' THEN 'approve'
            WHEN kind = 'flag' AND (n / 100) %% 10 < 8 THEN 'remove'
            WHEN kind = 'audit' AND (n / 100) %% 5 = 0 THEN 'remove'
            ELSE 'approve' END,
       CASE WHEN kind = 'auto' THEN 'auto-approved: spam "0" ' || round(conf::numeric, 3)
            ELSE '' END,
       '', decided_at,
       CASE kind WHEN 'auto' THEN 'labeling' WHEN 'audit' THEN 'audit' ELSE 'flagged' END,
       jsonb_build_array(%(v1)s::int), '[]'::jsonb
FROM bench_seed WHERE status = 'decided'
ORDER BY decided_at
"""

# The queue's hourly snapshots of the past 30 days (the beat's queue_snapshot_take), per source.
SNAPSHOTS_SQL = """
INSERT INTO moderation_queuesnapshot (hour, source_id, waiting, past_sla, oldest_wait, taken_at)
SELECT h, s.id, 100 + (extract(hour FROM h)::int * 7 + s.id) %% 300, 5,
       3600 + extract(hour FROM h)::int * 60, h
FROM generate_series(date_trunc('hour', now()) - interval '30 days',
                     date_trunc('hour', now()) - interval '1 hour', interval '1 hour') AS h
CROSS JOIN moderation_source s
"""

CALLBACKS_SQL = """
INSERT INTO moderation_callbackdelivery (
    decision_id, source_id, state, attempts, next_attempt_at, enqueued_at, created_at,
    delivered_at
)
SELECT d.id, i.source_id, s.state, CASE s.state WHEN 'failed' THEN 8 ELSE 1 END,
       CASE WHEN s.state = 'pending' THEN now() END, d.created_at, d.created_at,
       CASE WHEN s.state = 'delivered' THEN d.created_at + interval '1 second' END
FROM moderation_decision d
JOIN moderation_item i ON i.id = d.item_id
CROSS JOIN LATERAL (
    SELECT CASE WHEN d.id %% 200 = 0 THEN 'failed'
                WHEN d.created_at > now() - interval '2 minutes' THEN 'pending'
                ELSE 'delivered' END AS state
) AS s
"""

# The dashboard's figures in one statement: each activity count over its index range, the
# queue per source, open labels, open callbacks, reviewers' throughput and reveals today.
DASHBOARD_SQL = """
SELECT
  (SELECT count(*) FROM moderation_item
     WHERE received_at >= %(today)s AND received_at < %(tomorrow)s),
  (SELECT count(*) FROM moderation_item
     WHERE received_at >= %(week)s AND received_at < %(tomorrow)s),
  (SELECT count(*) FROM labelers_label
     WHERE status = 'done' AND labeled_at >= %(today)s AND labeled_at < %(tomorrow)s),
  (SELECT count(*) FROM labelers_label
     WHERE status = 'done' AND labeled_at >= %(week)s AND labeled_at < %(tomorrow)s),
  (SELECT count(*) FROM moderation_item
     WHERE flagged_at >= %(today)s AND flagged_at < %(tomorrow)s),
  (SELECT count(*) FROM moderation_item
     WHERE flagged_at >= %(week)s AND flagged_at < %(tomorrow)s),
  (SELECT row(count(*) FILTER (WHERE reviewer_id IS NOT NULL AND created_at >= %(today)s),
              count(*) FILTER (WHERE reviewer_id IS NOT NULL),
              count(*) FILTER (WHERE reviewer_id IS NULL AND created_at >= %(today)s),
              count(*) FILTER (WHERE reviewer_id IS NULL))::text
     FROM moderation_decision
     WHERE created_at >= %(week)s AND created_at < %(tomorrow)s AND action <> 'undo'),
  (SELECT json_agg(row_to_json(s)) FROM (
     SELECT source_id, count(*) AS waiting, count(*) FILTER (WHERE sla_breached) AS past,
            min(waiting_since) AS oldest,
            count(*) FILTER (WHERE status = 'audit') AS audit,
            count(*) FILTER (WHERE status = 'rereview') AS rereview
     FROM moderation_item WHERE status = ANY(%(in_queue)s) GROUP BY source_id) AS s),
  (SELECT json_object_agg(status, n) FROM (
     SELECT status, count(*) AS n FROM labelers_label
     WHERE status = ANY(%(open_labels)s) GROUP BY status) AS l),
  (SELECT count(*) FROM moderation_item WHERE status = 'received'),
  (SELECT json_object_agg(state, n) FROM (
     SELECT state, count(*) AS n FROM moderation_callbackdelivery
     WHERE state IN ('pending', 'sending', 'failed') GROUP BY state) AS c),
  (SELECT json_agg(row_to_json(r)) FROM (
     SELECT u.username, count(*) FILTER (WHERE d.created_at >= %(today)s) AS today,
            count(*) AS week
     FROM moderation_decision d JOIN auth_user u ON u.id = d.reviewer_id
     WHERE d.created_at >= %(week)s AND d.created_at < %(tomorrow)s AND d.action <> 'undo'
     GROUP BY u.username ORDER BY u.username) AS r),
  (SELECT json_object_agg(reviewer_id, n) FROM (
     SELECT reviewer_id, count(*) AS n FROM moderation_mediareveal
     WHERE revealed_at >= %(today)s GROUP BY reviewer_id) AS m)
"""

# An item revision's effective decision: its latest by people, neither an undo nor undone;
# counted only when it is an approve or a remove (a final escalation is undecided).
QUALITY_SQL = """
WITH effective AS (
  SELECT DISTINCT ON (d.item_id, d.revision) d.item_id, d.revision, d.action
  FROM moderation_decision d
  WHERE d.reviewer_id IS NOT NULL AND d.action <> 'undo'
    AND NOT EXISTS (SELECT 1 FROM moderation_decision u WHERE u.undoes_id = d.id)
  ORDER BY d.item_id, d.revision, d.created_at DESC, d.id DESC
)
SELECT l.labeler_version_id,
       count(*) AS labeled,
       count(*) FILTER (WHERE f.flag) AS flagged,
       count(*) FILTER (WHERE e.action IN ('approve', 'remove')) AS decided,
       count(*) FILTER (WHERE f.flag AND e.action IN ('approve', 'remove')) AS flagged_decided,
       count(*) FILTER (WHERE f.flag AND e.action = 'remove') AS flagged_removed
FROM labelers_label l
CROSS JOIN LATERAL (
  SELECT l.label = '1' AND coalesce(l.confidence, 0) >= %(min_confidence)s AS flag
) AS f
LEFT JOIN effective e ON e.item_id = l.item_id AND e.revision = l.revision
WHERE l.labeler_version_id = ANY(%(versions)s) AND l.status = 'done' AND l.labeled_at >= %(since)s
GROUP BY l.labeler_version_id
"""

# The same per label, the decision looked up through the item's index (the other plan).
QUALITY_LATERAL_SQL = """
SELECT l.labeler_version_id,
       count(*) AS labeled,
       count(*) FILTER (WHERE f.flag) AS flagged,
       count(*) FILTER (WHERE e.action IN ('approve', 'remove')) AS decided,
       count(*) FILTER (WHERE f.flag AND e.action IN ('approve', 'remove')) AS flagged_decided,
       count(*) FILTER (WHERE f.flag AND e.action = 'remove') AS flagged_removed
FROM labelers_label l
CROSS JOIN LATERAL (
  SELECT l.label = '1' AND coalesce(l.confidence, 0) >= %(min_confidence)s AS flag
) AS f
LEFT JOIN LATERAL (
  SELECT d.action FROM moderation_decision d
  WHERE d.item_id = l.item_id AND d.revision = l.revision AND d.reviewer_id IS NOT NULL
    AND d.action <> 'undo'
    AND NOT EXISTS (SELECT 1 FROM moderation_decision u WHERE u.undoes_id = d.id)
  ORDER BY d.created_at DESC, d.id DESC LIMIT 1
) AS e ON true
WHERE l.labeler_version_id = ANY(%(versions)s) AND l.status = 'done' AND l.labeled_at >= %(since)s
GROUP BY l.labeler_version_id
"""

# Decided items of the routed sources whose current decision (the latest that is neither
# an undo nor undone, system ones included) carries an older version.
REREVIEW_SQL = """
SELECT count(*) FROM moderation_item i
CROSS JOIN LATERAL (
  SELECT d.labeler_versions FROM moderation_decision d
  WHERE d.item_id = i.id AND d.action <> 'undo'
    AND NOT EXISTS (SELECT 1 FROM moderation_decision u WHERE u.undoes_id = d.id)
  ORDER BY d.id DESC LIMIT 1
) AS current
WHERE i.status = 'decided' AND i.source_id = ANY(%(sources)s)
  AND current.labeler_versions @> ANY (%(older)s::jsonb[])
"""

REREVIEW_DISTINCT_SQL = """
SELECT count(*) FROM (
  SELECT DISTINCT ON (d.item_id) d.labeler_versions
  FROM moderation_decision d JOIN moderation_item i ON i.id = d.item_id
  WHERE i.status = 'decided' AND i.source_id = ANY(%(sources)s) AND d.action <> 'undo'
    AND NOT EXISTS (SELECT 1 FROM moderation_decision u WHERE u.undoes_id = d.id)
  ORDER BY d.item_id, d.id DESC
) AS current
WHERE current.labeler_versions @> ANY (%(older)s::jsonb[])
"""


def seed(count: int) -> dict:
    started = time.monotonic()
    now = timezone.now()
    sources = [
        Source.objects.create(
            name=f"Bench {n}",
            slug=f"bench-{n}",
            api_token_hash=hash_token(f"bench-{n}"),
            callback_url=f"https://example.com/callbacks/{n}",
            review_sla_minutes=240 if n == 0 else None,
        )
        for n in range(2)
    ]
    labeler = Labeler.objects.create(
        name="Spam",
        slug="spam",
        min_confidence=MIN_CONFIDENCE,
        auto_approve_confidence=0.95,
        audit_share=0.02,
    )
    v1 = LabelerVersion.objects.create(
        labeler=labeler, number=1, criteria_text="Spam, v1.", published_at=now - timedelta(200)
    )
    LabelerVersion.objects.create(
        labeler=labeler, number=2, criteria_text="Spam, v2.", published_at=now
    )
    for source in sources:
        source.labelers.add(labeler)
    reviewer_group = Group.objects.get_or_create(name="reviewer")[0]
    users = get_user_model().objects
    reviewers = [users.create_user(f"reviewer-{n}", password="x") for n in range(REVIEWERS)]
    for reviewer in reviewers:
        reviewer.groups.add(reviewer_group)
    staff = users.create_user("bench-admin", password="x", is_staff=True)
    params = {
        "count": count,
        "window": WAITING_WINDOW,
        "v1": v1.pk,
        "audit_score": AUDIT_QUEUE_SCORE,
        "reviewers": [r.pk for r in reviewers],
        "nreviewers": REVIEWERS,
    }
    with connection.cursor() as cursor:
        for sql in (
            STAGE_SQL,
            ITEMS_SQL,
            LABELS_SQL,
            UNDONE_SQL,
            DECISIONS_SQL,
            CALLBACKS_SQL,
            SNAPSHOTS_SQL,
        ):
            for statement in sql.split(";\n"):
                cursor.execute(statement, params)
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('moderation_item', 'id'), max(id)) "
            "FROM moderation_item"
        )
        cursor.execute("DROP TABLE bench_seed")
    breached = items_sla_refresh()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
        cursor.execute(
            "SELECT (SELECT count(*) FROM moderation_item WHERE status = ANY(%s)), "
            "(SELECT count(*) FROM moderation_item WHERE status = 'decided'), "
            "(SELECT count(*) FROM moderation_decision), "
            "(SELECT count(*) FROM moderation_decision WHERE reviewer_id IS NULL), "
            "(SELECT count(*) FROM moderation_callbackdelivery WHERE state = 'failed'), "
            # The quality page's threshold advice tries each of these as a minimum.
            "(SELECT count(DISTINCT l.confidence) FROM labelers_label l "
            " JOIN moderation_decision d ON d.item_id = l.item_id AND d.reviewer_id IS NOT NULL "
            " WHERE l.label = '1')",
            [list(IN_QUEUE)],
        )
        waiting, decided, decisions, automatic, failed, candidates = cursor.fetchone()
    return {
        "labeler": labeler,
        "staff": staff,
        "seconds": time.monotonic() - started,
        "summary": (
            f"{waiting:,} waiting, {decided:,} decided ({automatic:,} automatically), "
            f"{decisions:,} decisions, {failed:,} callbacks failed, {breached:,} past SLA; "
            f'{candidates} confidences of decided "1"s (threshold candidates)'
        ),
    }


def baseline_params(labeler: Labeler) -> dict:
    """Each baseline's parameters, as the page would compute them now."""
    periods = selectors.dashboard_periods()
    versions = list(labeler.versions.filter(state=LabelerVersion.State.PUBLISHED))
    current = max(versions, key=lambda v: v.number)
    return {
        "dashboard": {
            "today": periods[0].start,
            "week": periods[1].start,
            "tomorrow": periods[0].end,
            "in_queue": list(IN_QUEUE),
            # Listed, not "NOT IN (done, superseded)": a range of the status index each.
            "open_labels": [
                s
                for s in Label.Status.values
                if s not in (Label.Status.DONE, Label.Status.SUPERSEDED)
            ],
        },
        "quality": {
            "versions": [v.pk for v in versions],
            # As the page asks: whole UTC days, today the last.
            "since": day_start(timezone.now().date()) - timedelta(days=QUALITY_DAYS - 1),
            "min_confidence": labeler.min_confidence or 0.0,
        },
        "rereview": {
            "sources": list(labeler.sources.values_list("pk", flat=True)),
            "older": [f"[{v.pk}]" for v in versions if v.number < current.number],
        },
    }


BASELINES = {
    "dashboard": {"one statement": DASHBOARD_SQL},
    "quality": {"CTE DISTINCT ON": QUALITY_SQL, "LATERAL per label": QUALITY_LATERAL_SQL},
    "rereview": {"LATERAL per item": REREVIEW_SQL, "DISTINCT ON": REREVIEW_DISTINCT_SQL},
}


def fetch(sql: str, params: dict) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def check_baselines(labeler: Labeler, params: dict, *, with_quality: bool) -> None:
    """The baselines count what the product counts: else their time would mean nothing."""
    candidates = len(selectors.decided_under_older_versions(labeler=labeler))
    counted = selectors.decided_under_older_versions_count(labeler=labeler)
    assert counted == candidates, ("rereview from daily counts", counted, candidates)
    for sql in BASELINES["rereview"].values():
        (count,) = fetch(sql, params["rereview"])[0]
        assert count == candidates, ("rereview", count, candidates)
    (row,) = fetch(DASHBOARD_SQL, params["dashboard"])
    periods = selectors.dashboard_periods()
    activity = selectors.dashboard_activity(periods)
    # The daily counts give exactly the rows' figures.
    assert activity == selectors.dashboard_activity_raw(periods), "dashboard activity"
    assert selectors.reviewer_throughput(periods) == selectors.reviewer_throughput_raw(periods)
    people = (activity["decided_by_people"], activity["decided_automatically"])
    expected = [
        activity["received"]["today"],
        activity["received"]["week"],
        activity["labeled"]["today"],
        activity["labeled"]["week"],
        activity["flagged"]["today"],
        activity["flagged"]["week"],
        f"({people[0]['today']},{people[0]['week']},{people[1]['today']},{people[1]['week']})",
    ]
    assert list(row[:7]) == expected, ("dashboard", row[:7], expected)
    callbacks = selectors.callbacks_by_state()
    assert {k: (row[10] or {}).get(k, 0) for k in callbacks} == callbacks, ("callbacks", row[10])
    since = params["quality"]["since"]
    product = {report.version.pk: report.quality for report in labeler_report(labeler, since=since)}
    if with_quality:
        # The daily counts give exactly the raw reading's numbers (also at this size).
        started = time.monotonic()
        raw = labeler_report_raw(labeler, since=since)
        print(f"raw quality reading (the page before rollups): {time.monotonic() - started:.2f} s")
        assert raw == labeler_report(labeler, since=since), "rollups differ from the raw reading"
    for sql in BASELINES["quality"].values():
        for version_id, *figures in fetch(sql, params["quality"]):
            q = product[version_id]
            mine = [q.labeled, q.flagged, q.decided, q.flagged_decided, q.flagged_removed]
            assert figures == mine, ("quality", version_id, figures, mine)


def page_urls(labeler: Labeler) -> dict[str, str]:
    return {
        "dashboard": reverse("manage_dashboard"),
        "quality": reverse("manage_labeler_quality", args=[labeler.pk]) + f"?days={QUALITY_DAYS}",
        "rereview": reverse("manage_labeler_rereview", args=[labeler.pk]),
    }


def get(client: Client, url: str, cpu: list[float] | None = None) -> float:
    """Milliseconds of one request; `cpu`: where to add the milliseconds of this process's
    CPU it took (Python's side alone: less sensitive than the wall clock to other load)."""
    started, started_cpu = time.perf_counter(), time.process_time()
    response = client.get(url)
    elapsed = (time.perf_counter() - started) * 1000
    if cpu is not None:
        cpu.append((time.process_time() - started_cpu) * 1000)
    assert response.status_code == 200, (url, response.status_code)
    return elapsed


def as_select(sql: str) -> str:
    """A captured query as a plain statement: one read through a server-side cursor is its
    SELECT (whose fetches are part of its cost)."""
    return re.sub(r"^DECLARE .*? CURSOR WITH(?:OUT)? HOLD FOR ", "", sql)


def replay(sql: str) -> float:
    """Milliseconds to run one captured read again alone, every row fetched."""
    return timed(sql, 1)[0] if sql.startswith("SELECT") else 0.0


def measure_page(client: Client, url: str, requests: int, budget: float) -> dict:
    # The first warm-up request is the one whose queries are captured.
    with CaptureQueriesContext(connection) as captured:
        first = get(client, url)
    # Now: the next request's start empties the connection's query log.
    reads = [as_select(q["sql"]) for q in captured.captured_queries]
    if first < 1000:  # a slow page is warm after one request; spare the time
        get(client, url)
    timings: list[float] = []
    cpu: list[float] = []
    started = time.monotonic()
    while len(timings) < requests and (
        len(timings) < MIN_REQUESTS or time.monotonic() - started < budget
    ):
        timings.append(get(client, url, cpu))
    queries = [(sql, replay(sql)) for sql in reads]
    slowest_sql, slowest_ms = max(queries, key=lambda q: q[1])
    return {
        "n": len(timings),
        "p50": median(timings),
        "p99": percentile(timings, 0.99),
        "cpu_p50": median(cpu),
        "queries": len(queries),
        "sql_ms": sum(ms for _, ms in queries),
        "slowest_sql": slowest_sql,
        "slowest_ms": slowest_ms,
    }


def measure_baseline(page: str, params: dict, requests: int) -> dict:
    """Every plain variant of the page's work, timed; the fastest is the baseline."""
    best = None
    for name, sql in BASELINES[page].items():
        timed(sql, 2, params)  # warm
        timings = timed(sql, requests, params)
        result = {"name": name, "p50": median(timings), "sql": sql}
        if best is None or result["p50"] < best["p50"]:
            best = result
    assert best is not None
    return best


def profile(client: Client, url: str, top: int = 12) -> str:
    """One request under cProfile: the functions that took the most time themselves, then
    the project's own functions by cumulative time."""
    profiler = cProfile.Profile()
    profiler.enable()
    get(client, url)
    profiler.disable()
    parts = []
    for order, restrictions in (("tottime", [top]), ("cumulative", [PROJECT_CODE, top])):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(*restrictions)
        lines = out.getvalue().splitlines()
        header = next(n for n, line in enumerate(lines) if "ncalls" in line)
        if not parts:
            parts += [line.strip() for line in lines if "function calls" in line]
        parts += [f"by {order}:", *lines[header:]]
    return "\n".join(line for line in parts if line.strip()).replace(str(ROOT) + "/", "")


def shorten(text: str, width: int = 400) -> str:
    """Long lines (a query's IN list of 1,000 ids) cut to `width` characters."""
    return "\n".join(
        line if len(line) <= width else f"{line[:width]} ... ({len(line):,} characters)"
        for line in text.splitlines()
    )


def explain(sql: str, params: dict | None = None) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def seeded_database(count: int, reuse: bool) -> dict:
    """A seeded database of `count` items: seeded now (DB_NAME), or with --reuse the one
    kept for that size from an earlier run (`bench_admin_keep_<count>`, seeded the first
    time and marked once complete; migrated to this code's models each run)."""
    if not reuse:
        pgdb.recreate_database(DB_NAME)
        return seed(count)
    name = f"bench_admin_keep_{count}"
    pgdb.switch_database(name)
    if pgdb.comment(name) == SEEDED:
        call_command("migrate", verbosity=0)
        labeler = Labeler.objects.get(slug="spam")
        staff = get_user_model().objects.get(username="bench-admin")
        return {"labeler": labeler, "staff": staff, "seconds": 0.0, "summary": "kept, reused"}
    pgdb.recreate_database(name)
    seeded = seed(count)
    pgdb.admin(f"COMMENT ON DATABASE {name} IS '{SEEDED}'")
    return seeded


def run_size(count: int, args, *, first: bool, last: bool) -> dict:
    print(f"\n=== {count:,} items ({load()}) ===", flush=True)
    seeded = seeded_database(count, args.reuse)
    print(f"seeded in {seeded['seconds']:.1f} s: {seeded['summary']}", flush=True)
    labeler = seeded["labeler"]
    started = time.monotonic()
    days = quality_rollups_refresh()
    print(f"rollups: {days} days counted in {time.monotonic() - started:.1f} s (first run)")
    started = time.monotonic()
    days = decided_rollups_refresh()
    print(f"decided rollups: {days} days counted in {time.monotonic() - started:.1f} s")
    started = time.monotonic()
    days = dashboard_rollups_refresh()
    print(f"dashboard rollups: {days} days counted in {time.monotonic() - started:.1f} s")
    # A steady run: one item changed on a closed day, its day recounted.
    changed = Label.objects.filter(
        status="done", labeled_at__lt=day_start(timezone.now().date())
    ).last()
    assert changed is not None
    item_figures_changed(item_id=changed.item_id)
    started = time.monotonic()
    days = quality_rollups_refresh()
    print(f"rollups: {days} day(s) recounted in {time.monotonic() - started:.2f} s (a change)")
    params = baseline_params(labeler)
    if not args.skip_checks:
        started = time.monotonic()
        check_baselines(labeler, params, with_quality=first)
        print(f"baselines agree with the product's selectors ({time.monotonic() - started:.1f} s)")
    # As production sees it behind the TLS proxy (SSL redirect and HSTS are on there).
    client = Client(HTTP_X_FORWARDED_PROTO="https")
    client.force_login(seeded["staff"])
    results = {}
    for page, url in page_urls(labeler).items():
        if page not in args.pages:
            continue
        result = measure_page(client, url, args.requests, args.budget)
        baseline = (
            {"name": "skipped", "p50": float("nan"), "sql": ""}
            if args.no_baselines
            else measure_baseline(page, params[page], args.requests)
        )
        result.update(baseline=baseline, load=os.getloadavg()[0])
        results[page] = result
        print(
            f"{page:9} {url:40} n={result['n']:2}  p50 {result['p50']:9.1f} ms  "
            f"p99 {result['p99']:9.1f} ms  CPU p50 {result['cpu_p50']:6.1f} ms"
            f" | baseline ({baseline['name']}) "
            f"p50 {baseline['p50']:7.2f} ms | {result['queries']} queries, "
            f"their SQL replayed {result['sql_ms']:.1f} ms, slowest "
            f"{result['slowest_ms']:.1f} ms | load {result['load']:.2f}",
            flush=True,
        )
        if first and not args.no_profile:
            print(f"--- profile of one {page} request, {count:,} items:\n{profile(client, url)}")
        if last:
            print(
                f"--- the {page} page's slowest query ({result['slowest_ms']:.1f} ms):\n"
                f"{shorten(result['slowest_sql'], 1500)}\n"
                f"--- its EXPLAIN (ANALYZE, BUFFERS):\n{shorten(explain(result['slowest_sql']))}"
            )
            if baseline["sql"]:
                print(
                    f"--- baseline's EXPLAIN (ANALYZE, BUFFERS):\n"
                    f"{explain(baseline['sql'], params[page])}\n",
                    flush=True,
                )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,200000", help="comma-separated item counts")
    parser.add_argument("--requests", type=int, default=30, help="timed requests per page")
    parser.add_argument(
        "--budget",
        type=float,
        default=60.0,
        help=f"seconds per page and size; past it, stop after {MIN_REQUESTS} requests",
    )
    parser.add_argument("--no-profile", action="store_true", help="skip the profiles")
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="use (seed once, keep) the database bench_admin_keep_<size> of each size",
    )
    parser.add_argument(
        "--skip-checks",
        action="store_true",
        help="skip checking the baselines' figures against the product's (minutes at 5 M; "
        "for a --reuse run after one that checked them)",
    )
    parser.add_argument(
        "--no-baselines",
        action="store_true",
        help="time the pages only (the plain SQL baselines take seconds a run at 5 M)",
    )
    parser.add_argument(
        "--pages", default=",".join(PAGES), help=f"comma-separated, of {', '.join(PAGES)}"
    )
    args = parser.parse_args()
    args.pages = [page for page in args.pages.split(",") if page]
    assert set(args.pages) <= set(PAGES), args.pages
    sizes = [int(size) for size in args.sizes.split(",")]
    # Stopped with kill: still drop the database (below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    try:
        by_size = {
            size: run_size(size, args, first=n == 0, last=n == len(sizes) - 1)
            for n, size in enumerate(sizes)
        }
    finally:
        if not args.keep and not args.reuse:
            pgdb.drop_database(DB_NAME)
    print(f"\nTotal {time.monotonic() - started:.0f} s. Page times are whole requests through")
    print("the test Client (middleware, view, template); baseline is the plain SQL alone.\n")
    print(
        "| page | items | n | p50 ms | p99 ms | Python CPU p50 ms | baseline p50 ms | ratio "
        "| queries/request | SQL ms in one request | load |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for page in args.pages:
        for size in sizes:
            r = by_size[size][page]
            print(
                f"| {page} | {size:,} | {r['n']} | {r['p50']:.1f} | {r['p99']:.1f} | "
                f"{r['cpu_p50']:.1f} | {r['baseline']['p50']:.2f} | "
                f"{r['p50'] / r['baseline']['p50']:.1f}x | {r['queries']} | {r['sql_ms']:.1f} | "
                f"{r['load']:.1f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
