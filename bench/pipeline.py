"""Labeling throughput against the fake API with fixed latency L, in production settings.

    .venv/bin/python bench/pipeline.py [--items 5000] [--concurrency 16] [--latency 0.2] [--small]

Runs PostgreSQL (database bench_pipeline, recreated) + Redis (db 14) + one real Celery worker
with C threads. Prints items/s next to the bound C / L, and next to a baseline measured in the
same run: C plain threads calling the same fake with a pooled requests.Session, no database and
no broker (the best this machine can do for the same calls). Also prints API calls per item.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PG = "postgres://postgres@127.0.0.1:5432"
DB = "bench_pipeline"


def psql(sql: str) -> None:
    subprocess.run(["psql", f"{PG}/postgres", "-q", "-c", sql], check=True, capture_output=True)


def baseline(url: str, n: int, concurrency: int) -> float:
    import requests

    from testkit.fake_api import decide  # noqa: F401 (same server, same work)

    counter = iter(range(n))
    lock = threading.Lock()

    def run():
        session = requests.Session()
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            r = session.post(
                f"{url}/v1/label",
                json={"content_text": f"baseline {i}", "criteria_text": "Label hate"},
                headers={"Authorization": "Bearer test-key"},
                timeout=30,
            )
            r.raise_for_status()

    started = time.monotonic()
    threads = [threading.Thread(target=run) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return n / (time.monotonic() - started)


def main() -> None:
    # `timeout` and Ctrl-C must still reach the finally blocks that stop the workers: they
    # run in their own process groups and would otherwise outlive us and eat the next run.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument(
        "--workers", type=int, default=2, help="worker processes sharing C (threads each: C/W)"
    )
    parser.add_argument("--small", action="store_true", help="CI-sized run (300 items)")
    args = parser.parse_args()
    n = 300 if args.small else args.items
    c, latency = args.concurrency, args.latency

    psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    psql(f"CREATE DATABASE {DB}")
    os.environ.update(
        DATABASE_URL=f"{PG}/{DB}",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/14",
        SECRET_KEY="bench",
        DEBUG="false",
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    subprocess.run(["redis-cli", "-n", "14", "flushdb"], check=True, capture_output=True)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone

    from labelers.models import Label
    from labelers.services import labeler_default, labels_enqueue, source_setup
    from moderation.models import Item
    from testkit.fake_api import FakeLabelAPI
    from testkit.processes import app_env, start_worker, stop

    call_command("migrate", verbosity=0)
    fake = FakeLabelAPI().start()
    fake.configure(latency=latency)
    base = baseline(fake.url, min(n, 2000), c)
    fake.reset()
    fake.configure(latency=latency)

    source, _, _ = source_setup(name="Bench", slug="bench")
    version = labeler_default().current_version
    with transaction.atomic():
        items = Item.objects.bulk_create(
            Item(
                source=source,
                external_id=f"p{i}",
                webhook_id=f"w{i}",
                content_text=f"pipeline item {i}",
                content_hash=f"{i:064x}",
                status=Item.Status.LABELING,
            )
            for i in range(n)
        )
        labels = Label.objects.bulk_create(
            Label(
                item=item,
                labeler_version=version,
                content_hash=item.content_hash,
                model="cope-latest",
                enqueued_at=timezone.now(),
            )
            for item in items
        )
    with tempfile.TemporaryDirectory() as tmp:
        env = app_env(data_dir=Path(tmp), api_url=fake.url)
        workers = [
            start_worker(
                env, concurrency=c // args.workers, beat=False, log=Path(tmp) / f"w{i}.log"
            )
            for i in range(args.workers)
        ]
        try:
            time.sleep(3)  # let the workers connect before the clock starts
            started = time.monotonic()
            with transaction.atomic():
                labels_enqueue([label.pk for label in labels])
            deadline = started + max(120, 5 * n * latency / c)
            while time.monotonic() < deadline:
                if Label.objects.filter(status=Label.Status.DONE).count() >= n:
                    break
                time.sleep(0.25)
            elapsed = time.monotonic() - started
        finally:
            stop(*workers)
    done = Label.objects.filter(status=Label.Status.DONE).count()
    from django.db.models import Avg

    call_ms = Label.objects.aggregate(avg=Avg("latency_ms"))["avg"] or 0.0
    fake.stop()
    rate = done / elapsed
    bound = c / latency
    print(
        f"items={n} concurrency={c} latency={latency * 1000:.0f}ms  (PostgreSQL + Redis, "
        f"{args.workers} worker processes x {c // args.workers} threads)"
    )
    print(f"{'bound C/L':<34}{bound:10.1f} items/s")
    print(
        f"mean HTTP wall time per call seen by the worker: {call_ms:.1f} ms "
        f"(L = {latency * 1000:.0f})"
    )
    print(
        f"{'baseline: plain threads, no DB':<34}{base:10.1f} items/s  ({base / bound:.3f} x bound)"
    )
    print(
        f"{'product: webhook-less drain':<34}{rate:10.1f} items/s  ({rate / bound:.3f} x bound, "
        f"{rate / base:.3f} x baseline)"
    )
    print(
        f"labeled {done}/{n} in {elapsed:.1f}s; "
        f"API calls per item-labeler: {len(fake.calls) / n:.4f}"
    )
    print(
        f"target >= 0.9 x bound: {'PASS' if rate >= 0.9 * bound else 'FAIL'}; "
        f"calls/item <= 1.01: {'PASS' if len(fake.calls) / n <= 1.01 else 'FAIL'}"
    )
    from django.db import connections

    connections.close_all()
    psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


if __name__ == "__main__":
    main()
