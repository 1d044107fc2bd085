"""Where a label's CPU goes: one Celery worker thread draining labels from a zero-latency fake.

    .venv/bin/python bench/profile_label.py [--labels 400] [--rate 250] [--out DIR]
                                            [--variants server-side-binding]
                                            [--concurrency 1] [--latency 0]

PostgreSQL (database bench_profile, recreated) + Redis (db 13, its own queue `bench-profile`:
nothing is flushed, so it may run beside bench/pipeline.py). Two drains of the same number of
labels, each single-threaded, LABEL_BATCH_SIZE labels to a message as the dispatch sends them:

1. in-process: the task function called directly (no Celery, no broker), CPU by thread_time;
2. a real Celery worker (thread pool, concurrency 1) under `py-spy record` (needs py-spy in
   the venv: `.venv/bin/pip install py-spy`), CPU by /proc. Its samples are split by the
   leaf-most library on the stack and by the deepest project function, and scaled to the
   worker's measured CPU per label, so each part is given in ms per label.

The difference between the two drains is what the task protocol costs (message, ack, Celery
bookkeeping); the SQL count per label is the one `bench/pipeline.py --queries` prints.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench import cpu  # noqa: E402

PG = "postgres://postgres@127.0.0.1:5432"
DB = "bench_profile"
QUEUE = "bench-profile"

# Leaf-most match wins: the library a sample was spending its time in.
LIBRARIES = [
    ("psycopg", "psycopg: execute, wait for PostgreSQL, adapt rows"),
    ("django/db/backends", "Django DB backend (cursor wrappers, connection upkeep)"),
    ("django/db/models/sql", "Django ORM: SQL compilation"),
    ("django/db/models/lookups", "Django ORM: SQL compilation"),
    ("django/db/models/expressions", "Django ORM: SQL compilation"),
    ("django/db/models/functions", "Django ORM: SQL compilation"),
    ("django/db/models", "Django ORM: querysets, model instances"),
    ("django/db/transaction", "Django transaction.atomic"),
    ("django/", "Django other (settings, signals, timezone)"),
    ("requests/", "HTTP client (requests/urllib3/http.client)"),
    ("urllib3/", "HTTP client (requests/urllib3/http.client)"),
    ("http/client", "HTTP client (requests/urllib3/http.client)"),
    ("json/", "JSON"),
    ("logging/", "logging"),
    ("kombu/", "Celery/kombu/redis (task protocol, broker)"),
    ("celery/", "Celery/kombu/redis (task protocol, broker)"),
    ("redis/", "Celery/kombu/redis (task protocol, broker)"),
    ("billiard/", "Celery/kombu/redis (task protocol, broker)"),
    ("vine/", "Celery/kombu/redis (task protocol, broker)"),
    ("cachetools/", "project code"),
    ("labelers/", "project code"),
    ("moderation/", "project code"),
    ("config/", "project code"),
]
PROJECT = ("labelers/", "moderation/")
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


def psql(sql: str) -> None:
    subprocess.run(["psql", f"{PG}/postgres", "-q", "-c", sql], check=True, capture_output=True)


def _frames(stack: str):
    for raw in stack.split(";"):
        m = FRAME.match(raw.strip())
        if m:
            yield m["func"], m["file"] or "", m["line"] or ""


def classify(raw_file: Path) -> tuple[Counter, Counter, Counter, int]:
    by_library: Counter = Counter()
    by_top: Counter = Counter()
    by_step: Counter = Counter()
    total = 0
    for line in raw_file.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = list(_frames(stack))
        library = "other (stdlib, interpreter)"
        for _func, file, _line in reversed(frames):
            hit = next((name for key, name in LIBRARIES if key in file), None)
            if hit:
                library = hit
                break
        by_library[library] += n
        # The project frames under the task, outermost first: "fetch.py:label_fetch:184 >
        # _finish:204 > item_refresh" (line numbers of this checkout).
        chain = [
            f"{Path(file).name}:{func}:{line}"
            for func, file, line in frames
            if any(file.startswith(p) or f"/{p}" in file for p in PROJECT)
        ][1:]  # [0] is the task in tasks.py
        step = " > ".join(chain[:3]) if chain else "outside the task: " + library
        by_top[chain[0] if chain else step] += n
        by_step[step] += n
    return by_library, by_top, by_step, total


def report(raw: Path, worker_ms: float) -> None:
    by_library, by_top, by_step, total = classify(raw)
    # py-spy leaves out idle threads (waiting on a socket), so its samples are CPU samples.
    scale = worker_ms / max(total, 1)
    print(f"\nworker CPU per label by library (leaf-most on the stack; {total} samples)")
    for name, count in by_library.most_common():
        print(f"  {name:<72}{count * scale:6.2f} ms  {100 * count / total:5.1f} %")
    print("\nworker CPU per label by step (line of fetch.label_fetch, or outside the task)")
    for name, count in by_top.most_common():
        print(f"  {name:<72}{count * scale:6.2f} ms  {100 * count / total:5.1f} %")
    print("\nworker CPU per label by project call chain (top 20)")
    for name, count in by_step.most_common(20):
        print(f"  {name:<72}{count * scale:6.2f} ms  {100 * count / total:5.1f} %")


def make_labels(n: int, prefix: str):
    from django.db import transaction
    from django.utils import timezone

    from labelers.criteria import labeler_default, source_setup
    from testkit.seed import items_bulk, labels_bulk

    source = source_setup(name=f"Profile {prefix}", slug=f"profile-{prefix}")[0]
    version = labeler_default().current_version
    with transaction.atomic():
        items = items_bulk(
            source=source,
            count=n,
            prefix=prefix,
            text="profile item {prefix} {n}",
            status="labeling",
        )
        return labels_bulk(items, version=version, model="cope-latest", enqueued_at=timezone.now())


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser()
    parser.add_argument("--labels", type=int, default=400)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument(
        "--concurrency", type=int, default=1, help="worker threads (the in-process drain: 1)"
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, help="fake API latency for the worker drain (s)"
    )
    parser.add_argument("--out", type=Path, default=None, help="keep the py-spy files here")
    parser.add_argument(
        "--variants", default="", help="candidate settings changes (bench/variants.py)"
    )
    parser.add_argument(
        "--classify",
        nargs=2,
        metavar=("RAW", "MS_PER_LABEL"),
        help="only split an earlier py-spy raw file, scaled to the given worker CPU per label",
    )
    args = parser.parse_args()
    if args.classify:
        report(Path(args.classify[0]), float(args.classify[1]))
        return
    n = args.labels
    spy = Path(sys.executable).parent / "py-spy"

    psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    psql(f"CREATE DATABASE {DB}")
    os.environ.update(
        DATABASE_URL=f"{PG}/{DB}",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/13",
        SECRET_KEY="bench",
        DEBUG="false",
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="bench.variants" if args.variants else "config.settings",
        BENCH_VARIANTS=args.variants,
    )
    import django

    django.setup()
    import psycopg
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from labelers import tasks
    from labelers.models import Label
    from testkit.fake_api import FakeLabelAPI
    from testkit.processes import app_env

    call_command("migrate", verbosity=0)
    fake = FakeLabelAPI().start()
    fake.configure(latency=0)
    settings.ZENTROPI_API_URL, settings.ZENTROPI_API_KEY = fake.url, "test-key"

    # 1. In-process: the task body, no Celery.
    labels = make_labels(n + 1, "a")
    tasks.label_fetch_task(labels[0].pk)  # warm
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        own_backend = cur.fetchone()[0]
    b0 = cpu.process_cpu(own_backend, children=False)
    t0, w0 = time.thread_time(), time.monotonic()
    for batch in tasks.labels_batches([label.pk for label in labels[1:]]):
        tasks.label_fetch_batch_task(batch)
    inproc_ms = (time.thread_time() - t0) * 1000 / n
    inproc_wall = (time.monotonic() - w0) * 1000 / n
    inproc_pg = (cpu.process_cpu(own_backend, children=False) - b0) * 1000 / n
    stats_conn = psycopg.connect(f"{PG}/postgres", autocommit=True)
    tracker = cpu.BackendTracker(stats_conn.cursor, DB, exclude_pid=own_backend)

    # 2. A real worker, one thread, under py-spy.
    labels = make_labels(n + 1, "b")
    out_dir = args.out or Path(tempfile.mkdtemp(prefix="profile-label-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / "worker.raw.txt"
    speedscope = out_dir / "worker.speedscope.json"
    with tempfile.TemporaryDirectory() as tmp:
        env = app_env(data_dir=Path(tmp), api_url=fake.url)
        worker_args = [
            sys.executable,
            *("-m", "celery", "-A", "config", "worker", "--pool", "threads"),
            *("--concurrency", str(args.concurrency), "--loglevel", "WARNING"),
            # Labels a batch hands back (to threads left waiting) go to the labels queue.
            *("-Q", f"{QUEUE},labels"),
            *("--without-gossip", "--without-mingle", "-n", f"p{time.monotonic_ns()}@%h"),
        ]
        worker = subprocess.Popen(
            worker_args,
            env=env,
            cwd=ROOT,
            stdout=open(Path(tmp) / "w.log", "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            time.sleep(4)
            tasks.label_fetch_task.apply_async((labels[0].pk,), queue=QUEUE)  # warm
            while not Label.objects.filter(pk=labels[0].pk, status=Label.Status.DONE).exists():
                time.sleep(0.1)
            spies = [
                subprocess.Popen(
                    [str(spy), "record", "--pid", str(worker.pid), "--rate", str(args.rate)]
                    + ["--format", fmt, "-o", str(path), "--nonblocking"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for fmt, path in (("raw", raw), ("speedscope", speedscope))
            ]
            time.sleep(1.5)
            fake.configure(latency=args.latency)
            tracker.sample()
            c0, w0 = cpu.process_cpu(worker.pid), time.monotonic()
            ids = [label.pk for label in labels[1:]]
            with tasks.label_fetch_task.app.producer_or_acquire() as producer:
                for batch in tasks.labels_batches(ids):
                    tasks.label_fetch_batch_task.apply_async(
                        (batch,), queue=QUEUE, producer=producer
                    )
            while Label.objects.filter(pk__in=ids, status=Label.Status.DONE).count() < n:
                time.sleep(0.05)
            worker_ms = (cpu.process_cpu(worker.pid) - c0) * 1000 / n
            tracker.sample()
            worker_pg = tracker.total() * 1000 / n
            worker_wall = (time.monotonic() - w0) * 1000 / n
            time.sleep(0.5)
            for s in spies:
                s.send_signal(signal.SIGINT)
            for s in spies:
                s.wait(timeout=30)
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=20)
    fake.stop()
    stats_conn.close()
    from django.db import connections

    connections.close_all()
    psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")

    print(
        f"labels={n} per drain, fake latency 0, one thread, PostgreSQL + Redis; "
        f"settings: {'config.settings + ' + args.variants if args.variants else 'config.settings'}"
    )
    print(
        f"in-process (task function, no Celery): {inproc_ms:6.2f} ms CPU/label, "
        f"{inproc_wall:6.2f} ms wall/label, PostgreSQL backend {inproc_pg:5.2f} ms CPU/label"
    )
    print(
        f"Celery worker ({args.concurrency} thread(s), fake latency {args.latency * 1000:.0f} ms, "
        f"under py-spy): {worker_ms:6.2f} ms CPU/label, "
        f"{worker_wall:6.2f} ms wall/label, PostgreSQL backend {worker_pg:5.2f} ms CPU/label"
    )
    print(f"=> task protocol and consumer overhead ~ {worker_ms - inproc_ms:.2f} ms CPU/label")
    if not raw.exists():
        print(f"no py-spy output ({raw}): is py-spy installed in the venv?")
        return
    report(raw, worker_ms)
    print(f"\npy-spy files: {raw} and {speedscope} (open at https://www.speedscope.app)")


if __name__ == "__main__":
    main()
