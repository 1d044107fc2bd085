"""Intake benchmark: signed webhook (the product) against a bare Django insert (baseline).

    .venv/bin/python bench/intake.py [--count N] [--concurrency C] [--rounds R] [--small]
                                     [--reports]

What it does, every run from scratch:

1. Drops and recreates the PostgreSQL database `bench_intake` (127.0.0.1:5432, user postgres,
   trust auth; $BENCH_DB_SUFFIX after the name, as the other benches), flushes Redis db 15
   (the broker; $BENCH_INTAKE_REDIS_DB names another), runs `manage.py migrate`.
2. Creates a source with the product's own `labelers.criteria.source_setup` (through
   `manage.py shell -c`) and reads back its signing secret; creates `bench_baseline`.
3. Starts ONE gunicorn (DJANGO_SETTINGS_MODULE=bench.settings, 2 x cores sync workers, no access
   log, DEBUG off, CONN_MAX_AGE=60) that serves both the product's `/webhooks/<slug>/` and the
   baseline `/baseline/` (bench/baseline_urls.py: json.loads + one raw INSERT).
4. Drives load from a separate process (multiprocessing, spawn): C client threads, each with its
   own http.client connection, over loopback; per run 100 warm-up requests then N timed ones,
   every request a distinct item (unique external_id and webhook-id), signed beforehand with
   the `standardwebhooks` package (timestamps stay well inside the 5-minute tolerance: a run is
   aborted after 120 s). Before the first run, 100 untimed requests to each target bring every
   worker to a warm state. Runs go baseline, product, baseline[, product, baseline ...] so that
   drift between runs is visible.
   With --reports, each round also runs signed reports (`/webhooks/<slug>/reports/`), each a
   distinct reporter's report of one of SEED_ITEMS labeled items stored beforehand (so reports
   move items into the queue, as in production), right after the item run.
5. Prints a table and checks the targets: product >= 0.8 x baseline req/s (each product run
   against the mean of the baseline runs either side of it; the median over the rounds),
   product p99 < 50 ms; with --reports, report req/s >= 0.8 x item (product) req/s. Also the
   median app and PostgreSQL CPU per request of each.
6. Stops gunicorn, drops the database, flushes Redis db 15.

Exit status: 0 when every run completed without errors, 1 otherwise; with --strict, 2 when the
runs were clean but a target was missed.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import multiprocessing
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # bench/queue.py
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import pgdb  # noqa: E402

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# A machine shared by several runs: each may name its own database and Redis db.
DB_NAME = pgdb.database_name("bench_intake")
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
BROKER_URL = f"redis://127.0.0.1:6379/{int(os.environ.get('BENCH_INTAKE_REDIS_DB', '15'))}"
SOURCE_SLUG = "bench"

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# What each load target posts to.
PATHS = {
    "baseline": "/baseline/",
    "product": f"/webhooks/{SOURCE_SLUG}/",
    "reports": f"/webhooks/{SOURCE_SLUG}/reports/",
    # --language: the same webhook plus the language detection its request used to pay.
    "product_lang": f"/bench-language/{SOURCE_SLUG}/",
}
# Items stored before the report runs, each labeled and out of the queue; reports cycle over
# them (a few reports per item per run, each from a new reporter).
SEED_ITEMS = 1000
REPORT_TARGET_RATIO = 0.8
PRIME_REQUESTS = 100  # per target, once, before the first timed run
TARGET_RATIO = 0.8
TARGET_P99_MS = 50.0

# ~200 characters of ordinary user text; each item gets its own index so content differs.
TEXT = (
    "Has anyone else noticed the new update broke the dark mode toggle? I tried clearing the "
    "cache and reinstalling but it keeps flipping back after a restart. Any ideas appreciated, "
    "thanks in advance - post #{n}"
)


# --------------------------------------------------------------------------------------------
# Load generator (runs in its own process)
# --------------------------------------------------------------------------------------------


def build_requests(conf: dict, n: int, phase: str) -> list[tuple[str, bytes, dict]]:
    """n distinct items for conf["target"], signed now (before the clock starts)."""
    from standardwebhooks.webhooks import Webhook

    signer = Webhook(conf["secret"])
    run = f"{conf['label']}-{uuid.uuid4().hex[:8]}-{phase}"
    path = PATHS[conf["target"]]
    out = []
    for i in range(n):
        if conf["target"] == "reports":
            body = json.dumps(
                {
                    "report_id": f"{run}-{i}",
                    "external_id": f"seed-{i % SEED_ITEMS}",
                    "reason": "spam",
                    "reporter": {"id": f"{run}-u{i}"},
                    "comment": "this is spam",
                }
            )
        else:
            body = json.dumps(
                {
                    "external_id": f"{run}-{i}",
                    "content_text": TEXT.format(n=i),
                    "metadata": {"author": f"u{i % 97}"},
                }
            )
        headers = {"Content-Type": "application/json"}
        if conf["target"] != "baseline":
            msg_id = f"msg_{uuid.uuid4().hex}"
            now = datetime.now(tz=UTC)
            headers |= {
                "webhook-id": msg_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": signer.sign(msg_id, now, body),
            }
        out.append((path, body.encode(), headers))
    return out


def _drive(reqs, *, port: int, concurrency: int, deadline: float) -> dict:
    """Send reqs with `concurrency` client threads; latencies in ms, statuses, wall time."""
    n = len(reqs)
    latency = [None] * n
    status = [0] * n
    errors: list[str] = []
    counter = itertools.count()  # next() on it is atomic under the GIL
    start = threading.Barrier(concurrency + 1)

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        start.wait()
        while True:
            i = next(counter)
            if i >= n or time.monotonic() > deadline:
                break
            path, body, headers = reqs[i]
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                code = resp.status
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                code, data = -1, repr(exc).encode()
            latency[i] = (time.perf_counter() - t0) * 1000
            status[i] = code
            if not 200 <= code < 300 and len(errors) < 5:
                errors.append(f"{code} {data[:200].decode(errors='replace')}")
        conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + 35)
    elapsed = time.perf_counter() - t0
    done = [i for i in range(n) if latency[i] is not None]
    codes: dict[int, int] = {}
    for i in done:
        codes[status[i]] = codes.get(status[i], 0) + 1
    return {
        "latency_ms": [latency[i] for i in done],
        "codes": codes,
        "errors": sum(1 for i in done if not 200 <= status[i] < 300),
        "error_samples": errors,
        "elapsed": elapsed,
        "aborted": len(done) < n,
    }


def load_process(conf: dict, results) -> None:
    """Entry point of the load-generator process: warm up, then the timed run."""
    try:
        deadline = time.monotonic() + conf["timeout"]
        warm = build_requests(conf, conf["warmup"], "warm")
        timed = build_requests(conf, conf["count"], "timed")
        if warm:
            w = _drive(warm, port=conf["port"], concurrency=conf["concurrency"], deadline=deadline)
            if w["errors"] or w["aborted"]:
                results.put({"fatal": f"warm-up failed: {w['codes']} {w['error_samples']}"})
                return
        results.put(
            _drive(timed, port=conf["port"], concurrency=conf["concurrency"], deadline=deadline)
        )
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which prints it
        results.put({"fatal": repr(exc)})


def run_load(conf: dict) -> dict:
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=load_process, args=(conf, results), name=f"load-{conf['label']}")
    proc.start()
    try:
        out = results.get(timeout=conf["timeout"] + 90)
    except Exception:  # noqa: BLE001 - queue.Empty: the child hung or died
        out = {"fatal": "load generator produced no result"}
    proc.join(10)
    if proc.is_alive():
        proc.kill()
        proc.join()
    return out


# --------------------------------------------------------------------------------------------
# Setup and teardown (parent process)
# --------------------------------------------------------------------------------------------


def pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


def pg_bench(sql: str, params=()):
    import psycopg

    with psycopg.connect(
        DATABASE_URL.replace("postgres://", "postgresql://"), autocommit=True
    ) as c:
        cur = c.execute(sql, params)
        return cur.fetchall() if cur.description else None


def redis_flush() -> None:
    import redis

    redis.Redis.from_url(BROKER_URL).flushdb()


def redis_queue_length() -> int:
    import redis

    r = redis.Redis.from_url(BROKER_URL)
    return sum(r.llen(k) for k in r.keys("*") if r.type(k) == b"list")


def app_env(data_dir: Path) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DJANGO_SETTINGS_MODULE", "ZENTROPI_API_KEY", "ZENTROPI_API_URL")
    }
    env.update(
        {
            "DATABASE_URL": DATABASE_URL,
            "SECRET_KEY": "bench",
            "DEBUG": "false",
            "SECURE_SSL_REDIRECT": "false",  # plain http on loopback
            "CELERY_BROKER_URL": BROKER_URL,
            "CONN_MAX_AGE": "60",
            "DATA_DIR": str(data_dir),
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def manage(env: dict, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "manage.py", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode:
        raise RuntimeError(f"manage.py {args[0]} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


CREATE_SOURCE = """
import json
from labelers.criteria import source_setup
source, secret, _token = source_setup(name="Bench", slug=%r)
print("BENCH_SOURCE=" + json.dumps({"slug": source.slug, "secret": secret}))
"""


SEED = """
from moderation.models import Item, Source
source = Source.objects.get(slug=%r)
Item.objects.bulk_create(
    Item(source=source, external_id=f"seed-{i}", webhook_id=f"seed-{i}",
         content_text=f"seeded item {i}", content_hash=f"{i:064x}",
         status=Item.Status.LABELED, violation_score=0.05)
    for i in range(%d)
)
"""


def seed_items(env: dict) -> None:
    """Labeled items out of the queue, for the report runs to report."""
    manage(env, "shell", "-c", SEED % (SOURCE_SLUG, SEED_ITEMS))


def create_source(env: dict) -> str:
    out = manage(env, "shell", "-c", CREATE_SOURCE % SOURCE_SLUG)
    for line in out.splitlines():
        if line.startswith("BENCH_SOURCE="):
            return json.loads(line.removeprefix("BENCH_SOURCE="))["secret"]
    raise RuntimeError(f"source_setup printed no secret:\n{out}")


def start_gunicorn(env: dict, *, port: int, workers: int, log: Path) -> subprocess.Popen:
    # The same start-up as the end-to-end tests: no access log, waits until it answers.
    from testkit.processes import start_web

    proc = start_web(env, port=port, workers=workers, log=log)
    time.sleep(1.0)  # let every worker finish booting, not only the first to answer
    return proc


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _cpu_seconds(pid: int, *, children: bool = False) -> float:
    """utime+stime of a process from /proc (and of its reaped children if asked)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLOCK_TICKS


def _processes() -> list[tuple[int, int, str]]:
    """(pid, ppid, comm) of every process."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            head, _, rest = (entry / "stat").read_text().rpartition(")")
        except OSError:
            continue
        out.append((int(entry.name), int(rest.split()[1]), head.partition("(")[2]))
    return out


def cpu_snapshot(web_pid: int) -> dict:
    """CPU seconds used so far by gunicorn (master + workers) and by PostgreSQL.

    PostgreSQL counts every `postgres` process (backends, WAL writer, ...), plus exited backends
    through the postmaster's children time. Other users of the same server would count too.
    """
    if not Path("/proc/self/stat").exists():
        return {}
    procs = _processes()
    app = _cpu_seconds(web_pid) + sum(_cpu_seconds(p) for p, pp, _ in procs if pp == web_pid)
    pg_pids = {p for p, _, name in procs if name == "postgres"}
    pg = sum(
        _cpu_seconds(p, children=pp not in pg_pids) for p, pp, name in procs if name == "postgres"
    )
    # The backends serving this database alone (gunicorn's persistent connections): what the
    # requests cost PostgreSQL, whatever else the machine's server does meanwhile.
    # Per backend: one replaced during a run (CONN_MAX_AGE) takes its CPU with it.
    pg_db = {p: _cpu_seconds(p) for p in pg_pids if _serves_bench_db(p)}
    return {"app": app, "pg": pg, "pg_db": pg_db, "client": _children_cpu()}


def cpu_used(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds per component between two snapshots; a backend seen only after counts
    whole (it started during the run), one gone by then is missing its last part."""
    used = {k: after[k] - before[k] for k in after if k != "pg_db"}
    if "pg_db" in after:
        used["pg_db"] = sum(t - before["pg_db"].get(p, 0.0) for p, t in after["pg_db"].items())
    return used


def _serves_bench_db(pid: int) -> bool:
    """A backend's title is "postgres: [<cluster>: ]<user> <database> <client> <state>"."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return DB_NAME in title.split()


def _children_cpu() -> float:
    """CPU of this process's reaped children: the load generators once joined."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summarize(label: str, target: str, out: dict, cpu: dict[str, float], sent: int) -> dict:
    """cpu: CPU seconds per component over the run (warm-up included); sent: requests in it."""
    lat = out["latency_ms"]
    return {
        "cpu_ms": {k: v * 1000 / sent for k, v in cpu.items()} if sent else {},
        "label": label,
        "target": target,
        "requests": len(lat),
        "errors": out["errors"],
        "rps": len(lat) / out["elapsed"] if out["elapsed"] else 0.0,
        "p50": percentile(lat, 50),
        "p99": percentile(lat, 99),
        "max": max(lat) if lat else float("nan"),
        "codes": out["codes"],
        "aborted": out["aborted"],
        "error_samples": out["error_samples"],
    }


def round_ratio_list(rows: list[dict]) -> list[float]:
    """Each product run's req/s over the mean of the baseline runs just before and after it."""
    ratios = []
    for i, row in enumerate(rows):
        if row["target"] != "product":
            continue
        before = next(r for r in reversed(rows[:i]) if r["target"] == "baseline")
        after = next((r for r in rows[i + 1 :] if r["target"] == "baseline"), before)
        ratios.append(row["rps"] / ((before["rps"] + after["rps"]) / 2))
    return ratios


def print_table(rows: list[dict]) -> None:
    head = f"{'target':<12} {'requests':>8} {'errors':>6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}"
    head += f" {'max ms':>8} {'app':>6} {'pg':>6} {'pg_db':>6} {'client':>6}  status codes"
    print(head)
    print("-" * len(head))
    print(
        f"{'':<58}(CPU ms per request: app gunicorn, pg every postgres process, pg_db the "
        "backends of the bench's database, client the load generator)"
    )
    for r in rows:
        codes = ", ".join(f"{k}x{v}" for k, v in sorted(r["codes"].items()))
        cpu = "".join(
            f" {r['cpu_ms'][k]:>6.2f}" if k in r["cpu_ms"] else f" {'-':>6}"
            for k in ("app", "pg", "pg_db", "client")
        )
        print(
            f"{r['label']:<12} {r['requests']:>8} {r['errors']:>6} {r['rps']:>8.1f} "
            f"{r['p50']:>8.2f} {r['p99']:>8.2f} {r['max']:>8.2f}{cpu}  {codes}"
            + ("  ABORTED (120 s limit)" if r["aborted"] else "")
        )
        for sample in r["error_samples"]:
            print(f"{'':<12}   e.g. {sample}")


# --------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="timed requests per run")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients")
    parser.add_argument("--warmup", type=int, default=100, help="warm-up requests per run")
    parser.add_argument(
        "--rounds", type=int, default=5, help="product runs; baseline runs before and after each"
    )
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1))
    parser.add_argument("--timeout", type=float, default=120.0, help="abort a run after (s)")
    parser.add_argument("--small", action="store_true", help="CI size: 200 requests, 20 warm-up")
    parser.add_argument("--strict", action="store_true", help="exit 2 when a target is missed")
    parser.add_argument(
        "--reports", action="store_true", help="also run signed reports after each item run"
    )
    parser.add_argument(
        "--language",
        action="store_true",
        help="also run the webhook with the language detection in the request (as before it "
        "moved to the dispatch), interleaved with the product runs",
    )
    args = parser.parse_args()
    if args.small:
        args.count, args.warmup = min(args.count, 200), min(args.warmup, 20)

    from testkit.processes import free_port

    data_dir = Path(tempfile.mkdtemp(prefix="bench-intake-"))
    env = app_env(data_dir)
    log = data_dir / "gunicorn.log"
    web = None
    rows: list[dict] = []
    print(
        f"load average before start: {os.getloadavg()[0]:.2f} (other work on the machine skews "
        "the results; the baseline runs around each product run show by how much)"
    )
    print(
        f"intake bench: {args.count} timed + {args.warmup} warm-up requests per run, "
        f"{args.concurrency} clients, gunicorn {args.workers} sync workers, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}"
    )
    try:
        redis_flush()
        pg_admin(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        pg_admin(f"CREATE DATABASE {DB_NAME}")
        manage(env, "migrate", "--noinput")
        pg_bench(
            "CREATE TABLE bench_baseline (id bigserial PRIMARY KEY, external_id text, body jsonb)"
        )
        secret = create_source(env)
        if args.reports:
            seed_items(env)
        port = free_port()
        web = start_gunicorn(env, port=port, workers=args.workers, log=log)

        # Prime both paths on every worker (imports, DB and broker connections) before timing:
        # otherwise whichever target runs first pays for the workers' cold start.
        extra = (["reports"] if args.reports else []) + (["product_lang"] if args.language else [])
        for target in ("baseline", "product", *extra):
            primed = run_load(
                {
                    "target": target,
                    "label": f"prime-{target}",
                    "port": port,
                    "secret": secret,
                    "count": 0,
                    "warmup": PRIME_REQUESTS,
                    "concurrency": args.concurrency,
                    "timeout": args.timeout,
                }
            )
            if "fatal" in primed:
                print(f"priming {target}: FAILED: {primed['fatal']}")
                print(f"gunicorn log tail:\n{log.read_text()[-3000:]}")
                return 1

        plan = ["baseline"]
        for n in range(args.rounds):
            products = ["product", "product_lang"] if args.language else ["product"]
            if n % 2:  # alternate which goes first
                products.reverse()
            plan += [*products, *(["reports"] if args.reports else []), "baseline"]
        seen: dict[str, int] = {}
        for target in plan:
            seen[target] = seen.get(target, 0) + 1
            label = f"{target} #{seen[target]}"
            conf = {
                "target": target,
                "label": label.replace(" #", ""),
                "port": port,
                "secret": secret,
                "count": args.count,
                "warmup": args.warmup,
                "concurrency": args.concurrency,
                "timeout": args.timeout,
            }
            before = cpu_snapshot(web.pid)
            out = run_load(conf)
            after = cpu_snapshot(web.pid)
            cpu = cpu_used(before, after)
            if "fatal" in out:
                print(f"{label}: FAILED: {out['fatal']}")
                print(f"gunicorn log tail:\n{log.read_text()[-3000:]}")
                return 1
            sent = args.warmup + len(out["latency_ms"])
            rows.append(summarize(label, target, out, cpu, sent))
            load = os.getloadavg()[0]
            print(f"  done: {label} ({rows[-1]['rps']:.0f} req/s, load avg {load:.2f})", flush=True)

        print()
        print_table(rows)
        base = [r for r in rows if r["target"] == "baseline"]
        prod = [r for r in rows if r["target"] == "product"]
        base_rps = sum(r["rps"] for r in base) / len(base)
        prod_rps = sum(r["rps"] for r in prod) / len(prod)
        # Each product run against the baseline runs either side of it (the machine's load
        # then), and the median of those: one disturbed round moves it little.
        round_ratios = round_ratio_list(rows)
        ratio = statistics.median(round_ratios)
        worst_p99 = max(r["p99"] for r in prod)
        clean = not any(r["errors"] or r["aborted"] for r in rows)
        ratio_ok, p99_ok = ratio >= TARGET_RATIO, worst_p99 < TARGET_P99_MS

        items, labels = pg_bench(
            "SELECT (SELECT count(*) FROM moderation_item), (SELECT count(*) FROM labelers_label)"
        )[0]
        (baseline_rows,) = pg_bench("SELECT count(*) FROM bench_baseline")[0]
        base_list = ", ".join(f"{r['rps']:.1f}" for r in base)
        prod_p99s = ", ".join(f"{r['p99']:.1f}" for r in prod)
        print()
        print(
            f"baseline runs: {base_list} req/s "
            f"(mean {base_rps:.1f}, spread "
            f"{(max(r['rps'] for r in base) - min(r['rps'] for r in base)) / base_rps:.0%})"
        )
        print(
            f"product/baseline req/s (means): {prod_rps:.1f} / {base_rps:.1f} = "
            f"{prod_rps / base_rps:.2f}"
        )
        print(
            "product/baseline per round (against the baselines either side): "
            + ", ".join(f"{r:.2f}" for r in round_ratios)
            + f"; median {ratio:.2f}"
        )
        for key in ("app", "pg_db"):
            per = {
                t: statistics.median(r["cpu_ms"].get(key, 0.0) for r in rows if r["target"] == t)
                for t in ("baseline", "product")
            }
            print(
                f"{key} CPU ms per request (median of runs): product {per['product']:.3f}, "
                f"baseline {per['baseline']:.3f}"
            )
        print(f"product p99: {prod_p99s} ms (worst {worst_p99:.1f})")
        with_lang = [r for r in rows if r["target"] == "product_lang"]
        if with_lang:
            lang_rps = sum(r["rps"] for r in with_lang) / len(with_lang)

            def app_ms(runs: list[dict]) -> float:
                return sum(r["cpu_ms"].get("app", 0.0) for r in runs) / len(runs)

            print(
                f"language detection in the request (as before) / now (in the dispatch): "
                f"req/s {lang_rps:.1f} / {prod_rps:.1f} = {lang_rps / prod_rps:.3f}; app CPU ms "
                f"per request {app_ms(with_lang):.2f} / {app_ms(prod):.2f} = "
                f"{app_ms(with_lang) / app_ms(prod):.3f}"
            )
        reports = [r for r in rows if r["target"] == "reports"]
        report_ok = True
        if reports:
            report_rps = sum(r["rps"] for r in reports) / len(reports)
            report_ratio = report_rps / prod_rps
            report_ok = report_ratio >= REPORT_TARGET_RATIO
            (stored_reports, reported) = pg_bench(
                "SELECT (SELECT count(*) FROM moderation_report), "
                "(SELECT count(*) FROM moderation_item WHERE status = 'reported')"
            )[0]
            print(
                f"reports/items req/s: {report_rps:.1f} / {prod_rps:.1f} = {report_ratio:.2f} "
                f"(report p99 worst {max(r['p99'] for r in reports):.1f} ms; stored "
                f"{stored_reports} reports, {reported} items now reported)"
            )
        sent = {
            t: PRIME_REQUESTS + sum(args.warmup + r["requests"] for r in rows if r["target"] == t)
            for t in PATHS
        }
        print(
            f"stored: {items} items, {labels} labels, {redis_queue_length()} tasks on the broker "
            f"(product requests sent: {sent['product']}); {baseline_rows} baseline rows "
            f"(sent: {sent['baseline']})"
        )
        print()
        print(
            f"targets: signed intake >= {TARGET_RATIO} x baseline req/s (median of rounds), "
            f"p99 < {TARGET_P99_MS:.0f} ms"
        )
        print(f"  req/s ratio {ratio:.2f} >= {TARGET_RATIO}: {'PASS' if ratio_ok else 'FAIL'}")
        print(f"  p99 {worst_p99:.1f} ms < {TARGET_P99_MS:.0f} ms: {'PASS' if p99_ok else 'FAIL'}")
        if reports:
            print(
                f"  reports req/s ratio {report_ratio:.2f} >= {REPORT_TARGET_RATIO}: "
                f"{'PASS' if report_ok else 'FAIL'}"
            )
        print(f"  errors: {'none' if clean else 'SOME (see table)'}")
        passed = ratio_ok and p99_ok and report_ok
        print(f"overall: {'PASS' if passed and clean else 'FAIL'}")
        if not clean:
            return 1
        return 2 if args.strict and not passed else 0
    finally:
        stop(web)
        cleanup(data_dir)


def cleanup(data_dir: Path) -> None:
    """Drop the database, flush the broker db, remove the data dir; report, never raise."""
    for what, step in (
        (
            f"drop database {DB_NAME}",
            lambda: pg_admin(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)"),
        ),
        ("flush Redis db 15", redis_flush),
        (f"remove {data_dir}", lambda: shutil.rmtree(data_dir, ignore_errors=True)),
    ):
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - cleanup goes on; the user is told
            print(f"cleanup: could not {what}: {exc!r}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
