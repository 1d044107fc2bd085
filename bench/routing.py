"""Routing benchmark (issue 29): intake's language detection, routing per item, and the rule
preview, each against a baseline measured in the same run.

    .venv/bin/python bench/routing.py [--items 200] [--days 7 --per-day 100000]

From scratch, in its own PostgreSQL database `bench_routing` (127.0.0.1:5432, user
postgres; no other database is touched), migrated:

1. Intake and dispatch: item_ingest of distinct short posts (the webhook's work: no language
   detection since it moved to the dispatch) against the same plus the detection the request
   used to do; and the dispatch taking those received items (its lock, the detection, one
   UPDATE per language found) with the detection and with it stubbed out. Alternating rounds,
   per-item cost and ratios.
2. Routing: the verdict of a labeler (item_labels_changed, the path every flagged item takes,
   in one transaction as in production) with no rules (today) and with 10 rules using every
   condition kind, the item matching only the last (the worst case: every rule tried, every
   extra fact loaded, the item moved): per-item cost and the ratio.
3. Preview: DAYS x PER_DAY items seeded server-side (INSERT ... SELECT over generate_series;
   received over the window, 5 % with an image, languages in turn, scores spread), 4 rules in
   force, a proposed fifth; routing_preview timed (5 runs after one warm-up) against a plain
   COUNT(*) of the window's items (the floor any preview pays). Target: <= 2 s.

The database is dropped at the end unless --keep.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from datetime import timedelta  # noqa: E402
from unittest import mock  # noqa: E402

from bench import pgdb  # noqa: E402

DB_NAME = "bench_routing"
pgdb.use_database(DB_NAME)

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from moderation import language  # noqa: E402
from moderation.intake import IntakePayload  # noqa: E402
from moderation.models import Bank, Item, RoutingRule, Source, hash_token  # noqa: E402
from moderation.routing import rules_invalidate  # noqa: E402
from moderation.selectors.routing import routing_preview  # noqa: E402
from moderation.services import verdicts as verdicts_service  # noqa: E402
from moderation.services.items import item_ingest  # noqa: E402
from moderation.services.routing_rules import queue_save, rule_save  # noqa: E402
from moderation.services.verdicts import (  # noqa: E402
    item_labels_changed,
    items_lock_received,
)

TEXTS = [
    "Buy cheap watches now, limited offer!",
    "Não acredito no que disseram sobre você",
    "Ich kann nicht glauben, was sie gesagt haben",
    "Mira mi nuevo video en el canal",
    "Ce message est du spam, supprimez-le.",
    "I can't believe they said that about you",
]

SEED_SQL = """
INSERT INTO moderation_item (
    legal_hold, legal_hold_reason,
    source_id, external_id, webhook_id, content_text, content_image, content_image_type,
    content_video, content_video_type, content_hash, metadata, received_at, waiting_since,
    revision, status, violation_score, queue_score, queue_key, sla_breached, verdict_versions,
    language
)
SELECT
    false, '',
    src.ids[1 + n %% 4], 'p-' || n, 'pw-' || n, 'item ' || n,
    CASE WHEN n %% 20 = 0 THEN 'images/bench.png' ELSE '' END,
    CASE WHEN n %% 20 = 0 THEN 'image/png' ELSE '' END,
    '', '', md5(n::text), '{}'::jsonb, t.at, t.at, 1,
    CASE WHEN n %% 10 = 0 THEN 'flagged' ELSE 'decided' END,
    ((n * 104729) %% 1000)::float8 / 1000, NULL, NULL, false, '[]'::jsonb,
    (ARRAY['en', 'pt', 'es', 'de', 'fr'])[1 + (n / 7) %% 5]
FROM generate_series(1::bigint, %(count)s) AS n
CROSS JOIN (SELECT array_agg(id ORDER BY id) AS ids FROM moderation_source) AS src
CROSS JOIN LATERAL (
    SELECT now() - (((n * 7919) %% (%(days)s * 86400)) || ' seconds')::interval AS at
) AS t
"""


def _per_item_ms(run, n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        run(i)
    return (time.perf_counter() - started) * 1000 / n


def bench_intake(sources: list[Source], n: int, rounds: int = 3) -> dict[str, float]:
    """Per item (ms): the webhook's work (item_ingest) as it is now, with no detection, and
    with the detection the request used to pay (the old placement); the dispatch's work
    (taking the received items: locks, detection, one UPDATE per language found) with and
    without the detection. Alternating rounds."""
    counter = iter(range(10**9))

    def ingest(_, *, detect: bool = False):
        k = next(counter)
        text = f"{TEXTS[k % 6]} {k}"
        payload = IntakePayload(external_id=f"i-{k}", content_text=text)
        item_ingest(source=sources[k % 4], payload=payload, webhook_id=f"iw-{k}")
        if detect:
            language.detect_language(text)

    def dispatch_ms() -> float:
        started = time.perf_counter()
        with transaction.atomic():
            rows = items_lock_received(limit=n)
        assert len(rows) == n
        Item.objects.filter(pk__in=[row.id for row in rows]).update(status=Item.Status.LABELING)
        return (time.perf_counter() - started) * 1000 / n

    language.detect_language("warm the model up")
    ingest(0)
    times: dict[str, list[float]] = {
        "intake": [],
        "intake_detect": [],
        "dispatch": [],
        "dispatch_no_detect": [],
    }
    for _ in range(rounds):
        Item.objects.filter(status=Item.Status.RECEIVED).update(status=Item.Status.LABELING)
        times["intake"].append(_per_item_ms(ingest, n))
        times["dispatch"].append(dispatch_ms())
        times["intake_detect"].append(_per_item_ms(lambda i: ingest(i, detect=True), n))
        with mock.patch.object(verdicts_service, "detect_language", lambda text: ""):
            times["dispatch_no_detect"].append(dispatch_ms())
    return {name: statistics.median(values) for name, values in times.items()}


def bench_routing(sources: list[Source], n: int, rounds: int = 3) -> tuple[float, float]:
    admin = get_user_model().objects.create_user("bench-admin", is_staff=True)
    labeler = sources[0].labelers.first()
    items = [
        Item.objects.create(
            source=sources[0],
            external_id=f"r-{k}",
            webhook_id=f"rw-{k}",
            content_text="x",
            content_hash=f"r{k}",
            status=Item.Status.LABELING,
            language="pt",
        )
        for k in range(n)
    ]

    def verdict(k):
        # One commit, as in production: a label's answer and the verdict it makes are stored
        # together (labelers/fetch.py _finish).
        with transaction.atomic():
            item_labels_changed(
                item_id=items[k].pk,
                violation_score=0.95,
                flagged=True,
                labeling=False,
                failed=False,
            )

    baseline, routed = [], []
    queues = [queue_save(actor=admin, queue=None, name=f"Team {q}") for q in range(10)]
    bank = Bank.objects.create(name="bench bank", action="review")
    conditions = [
        {"sources": [sources[3].pk]},
        {"labelers": [labeler.pk]} if labeler else {"sources": [sources[2].pk]},
        {"score_max": 0.1},
        {"formats": ["video"]},
        {"languages": ["ar"]},
        {"report_reasons": ["csam"]},
        {"strikes_min": 5},
        {"banks": [bank.pk]},
        {"score_min": 0.9, "formats": ["image"]},
        {"score_min": 0.9, "languages": ["pt"]},  # the one that matches
    ]
    for _ in range(rounds):
        RoutingRule.objects.update(enabled=False)
        rules_invalidate()
        Item.objects.filter(pk__in=[i.pk for i in items]).update(status=Item.Status.LABELING)
        baseline.append(_per_item_ms(verdict, n))
        if not RoutingRule.objects.exists():
            for q, cond in enumerate(conditions):
                rule_save(actor=admin, rule=None, name=f"r{q}", queue=queues[q], conditions=cond)
        RoutingRule.objects.update(enabled=True)
        rules_invalidate()
        Item.objects.filter(pk__in=[i.pk for i in items]).update(
            status=Item.Status.LABELING, queue=None
        )
        routed.append(_per_item_ms(verdict, n))
    assert Item.objects.filter(queue=queues[9]).count() == n
    RoutingRule.objects.all().delete()
    rules_invalidate()
    return statistics.median(baseline), statistics.median(routed)


def bench_preview(days: int, per_day: int) -> dict:
    admin = get_user_model().objects.get(username="bench-admin")
    with connection.cursor() as cursor:
        cursor.execute(SEED_SQL, {"count": days * per_day, "days": days})
        cursor.execute("VACUUM ANALYZE moderation_item")
    graphic = queue_save(actor=admin, queue=None, name="Graphic")
    spam = queue_save(actor=admin, queue=None, name="Spam desk")
    sources = list(Source.objects.order_by("id"))
    for name, queue, cond in [
        ("spam", spam, {"sources": [sources[1].pk], "score_min": 0.5}),
        ("pt", graphic, {"languages": ["pt"], "score_min": 0.8}),
        ("low", spam, {"score_max": 0.05}),
        ("img", graphic, {"formats": ["image"], "score_min": 0.95}),
    ]:
        rule_save(actor=admin, rule=None, name=name, queue=queue, conditions=cond)
    rules_invalidate()
    proposed = [
        *RoutingRule.objects.order_by("position"),
        RoutingRule(
            name="new",
            queue=graphic,
            conditions={"sources": [sources[0].pk], "formats": ["image"], "score_min": 0.9},
        ),
    ]
    since = timezone.now() - timedelta(days=days)
    count_sql = "SELECT COUNT(*) FROM moderation_item WHERE received_at >= %s"
    floor = statistics.median(pgdb.timed(count_sql, 5, [since]))
    routing_preview(proposed=proposed, days=days)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        preview = routing_preview(proposed=proposed, days=days)
        times.append((time.perf_counter() - started) * 1000)
    return {
        "items": preview.total,
        "moved": preview.moved,
        "p50_ms": statistics.median(times),
        "max_ms": max(times),
        "count_ms": floor,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=200, help="items per intake/routing round")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--per-day", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    print(f"bench/routing.py ({pgdb.load()})", flush=True)
    pgdb.recreate_database(DB_NAME)
    sources = [
        Source.objects.create(
            name=f"Bench {n}", slug=f"bench-{n}", api_token_hash=hash_token(f"bench-{n}")
        )
        for n in range(4)
    ]
    intake = bench_intake(sources, args.items)
    print(
        f"intake (the webhook's item_ingest) per item: {intake['intake']:.3f} ms now (no "
        f"detection), {intake['intake_detect']:.3f} ms with the detection the request used to "
        f"do (ratio {intake['intake_detect'] / intake['intake']:.3f})",
        flush=True,
    )
    total = intake["intake"] + intake["dispatch"]
    bare = intake["intake"] + intake["dispatch_no_detect"]
    print(
        f"dispatch (taking received items) per item: {intake['dispatch']:.3f} ms with the "
        f"detection, {intake['dispatch_no_detect']:.3f} ms without "
        f"(+{intake['dispatch'] - intake['dispatch_no_detect']:.3f} ms); intake + dispatch "
        f"{total:.3f} ms against {bare:.3f} ms with no detection at all "
        f"(ratio {total / bare:.3f})",
        flush=True,
    )
    base, routed = bench_routing(sources, args.items)
    print(
        f"verdict per item: {base:.3f} ms with no rules (today), {routed:.3f} ms with 10 rules "
        f"of every kind, matching the last (+{routed - base:.3f} ms, ratio {routed / base:.3f})",
        flush=True,
    )
    if not args.per_day:  # --per-day 0: no preview
        if not args.keep:
            pgdb.drop_database(DB_NAME)
        return 0
    result = bench_preview(args.days, args.per_day)
    ratio = result["p50_ms"] / result["count_ms"]
    print(
        f"preview over {args.days} days ({result['items']:,} items, {result['moved']:,} would "
        f"move): p50 {result['p50_ms']:.0f} ms, max {result['max_ms']:.0f} ms; a bare COUNT(*) "
        f"of the window {result['count_ms']:.0f} ms (ratio {ratio:.1f}); "
        f"target <= 2000 ms: {'met' if result['max_ms'] <= 2000 else 'MISSED'}",
        flush=True,
    )
    if not args.keep:
        pgdb.drop_database(DB_NAME)
    return 0


if __name__ == "__main__":
    sys.exit(main())
