"""Settings for both ways to run, every value from the environment (django-environ).

Embedded default: nothing set -> SQLite file and Kombu's filesystem broker under DATA_DIR.
Production: DATABASE_URL, CELERY_BROKER_URL, SECRET_KEY, ALLOWED_HOSTS set by the deployment.
"""

import importlib.util
import os
import secrets
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

from lib import sentry

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

DATA_DIR = Path(env("DATA_DIR", default=str(BASE_DIR / "data")))
# It holds the SQLite database, the secret key, sessions' backing store and first-run
# credentials: only its owner may read it.
DATA_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
DATA_DIR.chmod(0o700)

DEBUG = env.bool("DEBUG", default=False)
EMBEDDED = "DATABASE_URL" not in env.ENVIRON


def _secret_key() -> str:
    if key := env("SECRET_KEY", default=""):
        return key
    if DEBUG:
        return "django-insecure-dev-only-key"
    if EMBEDDED:
        # One machine by construction: keep a random key beside the SQLite file so that
        # sessions survive restarts without the newcomer having to invent a secret.
        key_file = DATA_DIR / "secret_key"
        if not key_file.exists():
            key_file.write_text(secrets.token_urlsafe(50))
            key_file.chmod(0o600)
        return key_file.read_text().strip()
    raise ImproperlyConfigured("SECRET_KEY must be set when DATABASE_URL is set (production).")


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# A refused form gets a page in the site's frame that says what to do (reload and resend).
CSRF_FAILURE_VIEW = "moderation.views.errors.csrf_failure"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "moderation",
    "labelers",
    "audit",
]

MIDDLEWARE = [
    # Latency and status by view for /metrics (lib/metrics.py): first, so that it times
    # everything after it, the webhook's short cut included.
    "lib.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "lib.security.ContentSecurityPolicyMiddleware",
    # The signed webhook is answered here, without what follows (sessions, CSRF, users,
    # login throttling): it needs none of it (lib/machine.py).
    "lib.machine.MachineEndpointMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # The client address for the audit rows the request's actions write.
    "audit.middleware.AuditRequestMiddleware",
]
# Where MachineEndpointMiddleware looks for views marked @machine_endpoint.
MACHINE_ENDPOINT_PATHS = ["/webhooks/"]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "moderation.context.workspace",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    _sqlite_file = Path(DATABASES["default"]["NAME"])
    if _sqlite_file.parent.is_dir() and not _sqlite_file.exists():
        # Created here rather than by SQLite (which follows the umask): owner-only, and its
        # -wal and -shm files take the same mode.
        os.close(os.open(_sqlite_file, os.O_CREAT | os.O_WRONLY, 0o600))
    # A file, not memory, so that worker processes started by the end-to-end tests share it.
    # conftest.py gives each test run a file of its own beside this name.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-db.sqlite3")}
    # Web server and worker write the same file: WAL lets readers run beside the writer,
    # IMMEDIATE transactions take the write lock up front instead of failing mid-way.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and not env.bool(
        "DATABASE_JIT", default=False
    ):
        # PostgreSQL's JIT compiles a query the planner thinks costly, and the planner
        # overrates LIMITed scans with a correlated filter: the author panel's capped
        # "removed" count took 0.9 s compiling for 14 ms of work. Every query here is short.
        _options = DATABASES["default"].setdefault("OPTIONS", {})
        _options["options"] = f"{_options.get('options', '')} -c jit=off".strip()
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "queue"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# The image collects static files at build time into a folder of its own (see Dockerfile).
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(DATA_DIR / "static")))
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(DATA_DIR / "media")))

# Admin messages carry new secrets once; keep them server-side, not in a cookie.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG and not EMBEDDED)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

# Intake limits. A 25 MB video is ~34 MB in base64 plus JSON; nothing larger is read.
INTAKE_MAX_BODY_BYTES = env.int("INTAKE_MAX_BODY_BYTES", default=36 * 1024 * 1024)
INTAKE_MAX_IMAGE_BYTES = 5 * 1024 * 1024
INTAKE_MAX_VIDEO_BYTES = 25 * 1024 * 1024
INTAKE_MAX_TEXT_CHARS = env.int("INTAKE_MAX_TEXT_CHARS", default=100_000)
INTAKE_MAX_METADATA_BYTES = env.int("INTAKE_MAX_METADATA_BYTES", default=16 * 1024)
INTAKE_MAX_IMAGE_PIXELS = env.int("INTAKE_MAX_IMAGE_PIXELS", default=40_000_000)
WEBHOOK_TOLERANCE_SECONDS = 5 * 60
# The webhook view reads the body itself (bounded); Django's own check stays as a backstop.
DATA_UPLOAD_MAX_MEMORY_SIZE = INTAKE_MAX_BODY_BYTES + 1024

# The labeling API (label-api.md).
ZENTROPI_API_URL = env("ZENTROPI_API_URL", default="https://api.zentropi.ai")
ZENTROPI_API_KEY = env("ZENTROPI_API_KEY", default="")
LABEL_CONNECT_TIMEOUT = env.float("LABEL_CONNECT_TIMEOUT", default=5.0)
LABEL_READ_TIMEOUT = env.float("LABEL_READ_TIMEOUT", default=120.0)
LABEL_BACKOFF_BASE = env.float("LABEL_BACKOFF_BASE", default=1.0)
LABEL_BACKOFF_CAP = env.float("LABEL_BACKOFF_CAP", default=60.0)
# A label failing try after try (5xx, timeouts) while the API answers other calls fails for
# good after this many tries or hours, whichever comes first, and its item goes to review
# as "labeling failed" (0 = no bound). 429s and a breaker pause never end the retries.
LABEL_GIVE_UP_ATTEMPTS = env.int("LABEL_GIVE_UP_ATTEMPTS", default=20)
LABEL_GIVE_UP_HOURS = env.float("LABEL_GIVE_UP_HOURS", default=24.0)
# A running label whose lease passed is taken to belong to a dead worker and is re-enqueued.
LABEL_LEASE_SECONDS = env.int("LABEL_LEASE_SECONDS", default=int(LABEL_READ_TIMEOUT) + 60)
# Pending work older than this with no worker on it is enqueued again by the sweep.
LABEL_STALE_PENDING_SECONDS = env.int("LABEL_STALE_PENDING_SECONDS", default=300)
# Beat's dispatch: how often new and due labels are sent to the workers (seconds).
LABEL_SWEEP_INTERVAL = env.float("LABEL_SWEEP_INTERVAL", default=1.0)
# A remote labeler pinned to "latest" can change on the API side: its cached answers are
# reused for identical content only while younger than this (seconds).
LABEL_REMOTE_LATEST_CACHE_SECONDS = env.int("LABEL_REMOTE_LATEST_CACHE_SECONDS", default=86400)
# Enqueued work not started after this many seconds, while the broker's labels queue holds
# fewer messages than there are such labels, lost its message (a broker restarted empty, a
# worker killed with prefetched messages): the sweep sends it again, oldest first.
LABEL_LOST_AFTER_SECONDS = env.float("LABEL_LOST_AFTER_SECONDS", default=20.0)
# Relabel (bulk) labels are sent only while the labels queue holds fewer labels than this
# (counted as messages x LABEL_BATCH_SIZE), so fresh items never wait behind a backlog; keep
# it above what the workers finish in two sweep intervals, or relabels run slower than the
# workers could.
LABEL_BULK_QUEUE_TARGET = env.int("LABEL_BULK_QUEUE_TARGET", default=200)
# The queue page and the admin say labeling is stalled when the dispatch has not run for this
# long, or a received item has waited this long to be routed (seconds).
LABEL_DISPATCH_STALL_SECONDS = env.float("LABEL_DISPATCH_STALL_SECONDS", default=30.0)
# Labels sent to the workers together, in one message (labelers.tasks.label_fetch_batch):
# the message, its receipt and its ack cost a worker about as much CPU as the label itself.
# One task works its batch one label after another, so the last batches of a burst finish up
# to this many calls after the rest; a batch stops taking labels after LABEL_BATCH_SECONDS and
# sends what is left in a new message. 1 sends one message per label.
LABEL_BATCH_SIZE = env.int("LABEL_BATCH_SIZE", default=4)
LABEL_BATCH_SECONDS = env.float("LABEL_BATCH_SECONDS", default=30.0)
# Global throughput caps shared by all workers (0 = no cap).
LABEL_MAX_IN_FLIGHT = env.int("LABEL_MAX_IN_FLIGHT", default=0)
LABEL_MAX_CALLS_PER_SECOND = env.float("LABEL_MAX_CALLS_PER_SECOND", default=0)

# The circuit breaker shared by all workers: when more than FAILURE_RATIO of at least
# MIN_CALLS calls in the last WINDOW seconds failed transiently, no label is sent for
# COOLDOWN seconds (doubling while the API stays down, up to MAX_COOLDOWN), then one probe.
LABEL_BREAKER_WINDOW = env.float("LABEL_BREAKER_WINDOW", default=30.0)
LABEL_BREAKER_MIN_CALLS = env.int("LABEL_BREAKER_MIN_CALLS", default=20)
# Not 0.5: with 20 to 30 calls in the window, a storm failing 40 % of calls passes half of
# them by chance often enough (13 % for a first 20) to pause labeling for nothing.
LABEL_BREAKER_FAILURE_RATIO = env.float("LABEL_BREAKER_FAILURE_RATIO", default=0.7)
LABEL_BREAKER_COOLDOWN = env.float("LABEL_BREAKER_COOLDOWN", default=30.0)
LABEL_BREAKER_MAX_COOLDOWN = env.float("LABEL_BREAKER_MAX_COOLDOWN", default=240.0)

# Where those caps and the breaker keep their shared state: Redis when the broker is Redis,
# else a file in DATA_DIR (the embedded default runs on one machine).
_broker_env = env("CELERY_BROKER_URL", default="")
LABEL_THROTTLE_REDIS_URL = env(
    "LABEL_THROTTLE_REDIS_URL",
    default=_broker_env if _broker_env.startswith(("redis://", "rediss://")) else "",
)
# Put before every key this deployment keeps in Redis (the broker's queues, the caps' and the
# breaker's state), so that several deployments, or several test runs, can share one Redis
# without taking each other's messages or tripping each other's breaker.
REDIS_KEY_PREFIX = env("REDIS_KEY_PREFIX", default="")

# Decisions back to the products (callbacks). Each decision is POSTed to its source's
# callback URL; a receiver that hangs is cut off after these timeouts (seconds).
CALLBACK_CONNECT_TIMEOUT = env.float("CALLBACK_CONNECT_TIMEOUT", default=5.0)
CALLBACK_READ_TIMEOUT = env.float("CALLBACK_READ_TIMEOUT", default=15.0)
# Delays before each retry after a failed attempt (seconds), as Standard Webhooks senders
# (Svix) do: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: about 28 hours, then failed.
CALLBACK_RETRY_SCHEDULE = [
    float(delay)
    for delay in env.list(
        "CALLBACK_RETRY_SCHEDULE", default=[5, 300, 1800, 7200, 18000, 36000, 36000]
    )
]
# SSRF: production sends only over https to public addresses, checked after DNS resolution
# at send time. The embedded default and DEBUG allow http and private addresses (a receiver
# on 127.0.0.1 in development); these settings allow them in production too.
CALLBACK_ALLOW_HTTP = env.bool("CALLBACK_ALLOW_HTTP", default=DEBUG or EMBEDDED)
CALLBACK_ALLOW_PRIVATE = env.bool("CALLBACK_ALLOW_PRIVATE", default=DEBUG or EMBEDDED)
# How often beat purges content past its source's retention period (s): each run purges up
# to ~5,000 items, in batches of 200 (moderation/services/retention.py).
RETENTION_PURGE_INTERVAL = env.float("RETENTION_PURGE_INTERVAL", default=600.0)
# How often beat sends due deliveries (retries, and any whose message was lost).
CALLBACK_SWEEP_INTERVAL = env.float("CALLBACK_SWEEP_INTERVAL", default=5.0)
# A delivery being sent for longer than this belongs to a dead worker and is sent again.
CALLBACK_LEASE_SECONDS = env.int(
    "CALLBACK_LEASE_SECONDS", default=int(CALLBACK_CONNECT_TIMEOUT + CALLBACK_READ_TIMEOUT) + 60
)
# A due delivery sent to the workers but not started after this lost its message (seconds).
CALLBACK_LOST_AFTER_SECONDS = env.float("CALLBACK_LOST_AFTER_SECONDS", default=60.0)

REVIEW_LEASE_SECONDS = env.int("REVIEW_LEASE_SECONDS", default=300)
# A reviewer may undo their own decision this long after making it (the page offers it for
# the first REVIEW_UNDO_OFFER_SECONDS).
REVIEW_UNDO_SECONDS = env.int("REVIEW_UNDO_SECONDS", default=120)
REVIEW_UNDO_OFFER_SECONDS = env.int("REVIEW_UNDO_OFFER_SECONDS", default=15)
# Share of each reviewer's "next" items that are golden items (decided items an admin vouches
# for, served like any other to measure reviewers); a reviewer's own setting overrides it.
REVIEW_GOLDEN_SHARE = env.float("REVIEW_GOLDEN_SHARE", default=0.05)
QUEUE_PAGE_SIZE = 50
# Set by `dev.py run --demo`: labels come from the local stand-in; every page says so.
DEMO_MODE = env.bool("DEMO_MODE", default=False)

# Celery. The database, not the broker, is the record of what is still to do.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = DATA_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        "polling_interval": 0.2,
    }
else:
    # Longer than any countdown we schedule and than a task's hard time limit, so Redis
    # never hands an unacked message to a second worker while the first still works on it.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
    }
    if REDIS_KEY_PREFIX:
        # Kombu's Redis transport prefixes every key it uses (queues, unacked messages).
        CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = REDIS_KEY_PREFIX
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
# Messages a worker reserves per thread. Four labels a thread either way: a message carries
# LABEL_BATCH_SIZE of them, and labels reserved by a worker are labels a fresh item waits
# behind (test_a_fresh_item_is_labeled_ahead_of_a_relabel_backlog).
CELERY_WORKER_PREFETCH_MULTIPLIER = env.int(
    "CELERY_WORKER_PREFETCH_MULTIPLIER", default=max(1, 4 // max(1, LABEL_BATCH_SIZE))
)
# On a lost broker connection, tasks running then cannot be acknowledged. Celery can cancel
# them (terminated under prefork) so that the broker redelivers them; here that threw away
# answers already paid for (a label answered 200 a moment before Redis restarted was never
# stored, and was paid again once its lease ran out). The database is the record instead:
# each task claims its row with a conditional UPDATE, so the redelivered message of a task
# that finished finds the row done and calls nothing. So running tasks finish and store what
# they paid for. A worker that stops fetching after the reconnect (the reason this was once
# on) is the wedge watchdog's job (config/celery.py), not a reason to discard paid work.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_TASK_TIME_LIMIT = int(LABEL_READ_TIMEOUT + LABEL_CONNECT_TIMEOUT) + 60
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 30
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# Three queues, all consumed by every worker (-Q labels,dispatch,callbacks): label tasks,
# the dispatch (beat's sweeps, relabel and shadow runs) and decisions sent back to the
# products. The sweep must never wait behind a label backlog, or new items stay "received"
# while the backlog drains. A worker started without -Q consumes every queue listed here.
CELERY_TASK_DEFAULT_QUEUE = "labels"
CELERY_TASK_QUEUES = [
    Queue(name, Exchange(name), routing_key=name) for name in ("labels", "dispatch", "callbacks")
]
CELERY_TASK_ROUTES = {
    "labelers.tasks.label_sweep": {"queue": "dispatch"},
    "labelers.tasks.relabel_run": {"queue": "dispatch"},
    "labelers.tasks.shadow_run": {"queue": "dispatch"},
    "labelers.tasks.items_reevaluate": {"queue": "dispatch"},
    "labelers.tasks.bank_retro_match": {"queue": "dispatch"},
    "moderation.tasks.queue_sla_refresh": {"queue": "dispatch"},
    "labelers.tasks.quality_rollups": {"queue": "dispatch"},
    "moderation.tasks.decided_rollups": {"queue": "dispatch"},
    "labelers.tasks.dashboard_rollups": {"queue": "dispatch"},
    "moderation.tasks.queue_snapshot": {"queue": "dispatch"},
    "moderation.tasks.items_reroute": {"queue": "dispatch"},
    # Callbacks wait on products' servers (up to the timeouts): never in front of labels.
    "moderation.tasks.callback_deliver": {"queue": "callbacks"},
    "moderation.tasks.callback_sweep": {"queue": "dispatch"},
    "moderation.tasks.retention_purge": {"queue": "dispatch"},
    "moderation.tasks.erasure_run": {"queue": "dispatch"},
    "moderation.tasks.erasure_sweep": {"queue": "dispatch"},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    # A sweep stuck behind a backlog is worth nothing once the next one is due: let it
    # expire instead of piling up one per interval.
    "sweep-labels": {
        "task": "labelers.tasks.label_sweep",
        "schedule": LABEL_SWEEP_INTERVAL,
        "options": {"expires": max(5.0, 5 * LABEL_SWEEP_INTERVAL)},
    },
    # Items past their source's review SLA move ahead within their score band; a minute's
    # lag is well inside an SLA counted in hours.
    "queue-sla": {
        "task": "moderation.tasks.queue_sla_refresh",
        "schedule": 60.0,
        "options": {"expires": 55.0},
    },
    # The quality page's daily counts: yesterday once it is over, and the days of items
    # decided or flagged since (the page counts those live meanwhile, so it is never stale).
    "quality-rollups": {
        "task": "labelers.tasks.quality_rollups",
        "schedule": 300.0,
        "options": {"expires": 290.0},
    },
    # The re-review count's daily counts of decided items, kept the same way.
    "decided-rollups": {
        "task": "moderation.tasks.decided_rollups",
        "schedule": 300.0,
        "options": {"expires": 290.0},
    },
    # The dashboard's daily figures per source (items received, labels, flags, decisions),
    # kept the same way.
    "dashboard-rollups": {
        "task": "labelers.tasks.dashboard_rollups",
        "schedule": 300.0,
        "options": {"expires": 290.0},
    },
    # The queue of each source once an hour: its past (depth, oldest wait) cannot be
    # counted afterwards, and the dashboard charts 30 days of it.
    "queue-snapshot": {
        "task": "moderation.tasks.queue_snapshot",
        "schedule": 3600.0,
        "options": {"expires": 1800.0},
    },
    "sweep-callbacks": {
        "task": "moderation.tasks.callback_sweep",
        "schedule": CALLBACK_SWEEP_INTERVAL,
        "options": {"expires": max(5.0, 5 * CALLBACK_SWEEP_INTERVAL)},
    },
    # Content past its source's retention period (moderation/services/retention.py).
    "retention-purge": {
        "task": "moderation.tasks.retention_purge",
        "schedule": RETENTION_PURGE_INTERVAL,
        "options": {"expires": RETENTION_PURGE_INTERVAL * 0.9},
    },
    # Erasures whose message was lost or whose worker died: within a minute.
    "sweep-erasures": {
        "task": "moderation.tasks.erasure_sweep",
        "schedule": 30.0,
        "options": {"expires": 25.0},
    },
}

# Logs: JSON lines in production (one object per line, for the log shipper), readable lines in
# development; either way each line carries the item, source and task it is about, and
# secrets are redacted (lib/logs.py). Celery's workers log through the same handlers.
LOG_FORMAT = env("LOG_FORMAT", default="json" if not DEBUG and not EMBEDDED else "plain")
# The app's lines (webhooks, callbacks given up, dispatch) at INFO; Celery's own at WARNING.
LOG_LEVEL = env("LOG_LEVEL", default="INFO").upper()
CELERY_LOG_LEVEL = env("CELERY_LOG_LEVEL", default="WARNING").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "lib.logs.AddContext"},
        "redact": {"()": "lib.logs.RedactSecrets"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s %(context)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            "static_fields": {"service": "modqueue"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["redact", "context"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Celery's own lines ("Task ... received/succeeded", beat's "Sending due task") come
        # every second with the label sweep: quiet unless asked for.
        "celery": {"level": CELERY_LOG_LEVEL},
    },
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Operations: health and readiness (lib/health.py) -----------------------------------
# /healthz and /readyz are answered first, before the SSL redirect and the host check, so a
# load balancer or the image's HEALTHCHECK can call them over plain http by IP.
MIDDLEWARE.insert(0, "lib.health.HealthMiddleware")
MIDDLEWARE.insert(1, "lib.logs.LogContextMiddleware")
SECURE_REDIRECT_EXEMPT = [r"^healthz/?$", r"^readyz/?$"]
# /readyz runs these (name: a function returning None when fine, else why not); the
# dispatcher's result is reported but fails readiness only with READYZ_CHECK_DISPATCHER on.
# `manage.py readyz --check` takes the same names.
HEALTH_CHECKS = {
    "database": "lib.health.check_database",
    "migrations": "lib.health.check_migrations",
    "broker": "lib.health.check_broker",
    "dispatcher": "labelers.health.check_dispatcher",
}
# What the database knows, exported by the web's /metrics (prometheus_client collectors).
METRICS_COLLECTORS = ["labelers.health.DatabaseStateCollector"]
READYZ_BROKER_TIMEOUT = env.float("READYZ_BROKER_TIMEOUT", default=2.0)
# /readyz always reports whether beat's dispatch ran within LABEL_DISPATCH_STALL_SECONDS;
# turned on, a stalled dispatcher also makes the web unready (off by default: one dead beat
# must not take every web instance, and intake with it, out of a load balancer's rotation).
READYZ_CHECK_DISPATCHER = env.bool("READYZ_CHECK_DISPATCHER", default=False)

# --- Operations: HTTPS behind the TLS proxy (check --deploy is clean in production) ---------
# Production (DATABASE_URL set, DEBUG off) sits behind a proxy that terminates TLS and sets
# X-Forwarded-Proto (SECURE_PROXY_SSL_HEADER above): redirect plain http (but /healthz and
# /readyz) and send HSTS. The embedded default serves http on localhost and does neither.
_PRODUCTION = not DEBUG and not EMBEDDED
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=_PRODUCTION)
# A year, subdomains included, preload allowed: what check --deploy asks for. Browsers keep
# HSTS for that long, so a deployment not yet sure of HTTPS everywhere starts lower (say
# 3600) and accepts check --deploy's warning meanwhile.
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if _PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=_PRODUCTION)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=_PRODUCTION)

# --- Operations: Prometheus metrics (lib/metrics.py, /metrics in lib/health.py) -------
# /metrics answers a scraper that shows this bearer token, or that calls directly (not
# through the proxy) from one of these addresses or networks. Production allows nobody by
# default: set a token, or the scraper's network (say 10.0.0.0/8).
METRICS_TOKEN = env("METRICS_TOKEN", default="")
METRICS_ALLOWED_IPS = env.list(
    "METRICS_ALLOWED_IPS", default=[] if _PRODUCTION else ["127.0.0.1", "::1"]
)
# A Celery worker serves its own metrics on this port (0: off), bound to this address.
WORKER_METRICS_PORT = env.int("WORKER_METRICS_PORT", default=0)
WORKER_METRICS_ADDR = env("WORKER_METRICS_ADDR", default="127.0.0.1")

# --- Operations: login throttling (django-axes) and a second factor for staff (django-otp) --
INSTALLED_APPS += [
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
]
# django-otp marks the user as verified (or not) right after authentication; axes last, as
# its documentation asks, so that a locked-out request is answered before any view runs.
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
    "django_otp.middleware.OTPMiddleware",
)
MIDDLEWARE.append("axes.middleware.AxesMiddleware")
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# After AXES_FAILURE_LIMIT failed logins for one user name from one address, that name is
# refused from that address for AXES_COOLOFF_MINUTES. By name and address together: a
# guesser's made-up names (or a colleague's typos) behind an office's one public address
# never lock everyone else behind it out, and nobody can lock a user out from elsewhere.
# Unlock early: the admin (Access attempts: delete the row), or manage.py axes_reset.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = False
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# The client's address: REMOTE_ADDR, or behind the TLS proxy (production) the last address
# the proxy appended to X-Forwarded-For; a client cannot forge the proxy's own entry.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=1 if _PRODUCTION else 0)
AXES_CLIENT_IP_CALLABLE = "lib.logins.client_ip"
# Staff must also give a one-time password (TOTP app, or a static emergency token) to use
# the admin when this is on. Give each staff user a device first (README: Production).
OTP_REQUIRED_FOR_STAFF = env.bool("OTP_REQUIRED_FOR_STAFF", default=False)
OTP_TOTP_ISSUER = "Moderation queue"

# --- Operations: media storage (uploaded images and videos) ---------------------------------
# local: files under MEDIA_ROOT (every web and worker process must see the same folder).
# s3: an S3-compatible bucket through django-storages (AWS S3, MinIO, Ceph, R2 ...), for
# workers on several machines without a shared folder. Media is only ever read through
# Django (the item page streams it to logged-in reviewers; the worker sends it to the API),
# so the bucket stays private and no public URL is made. Credentials: these variables, or
# boto3's own chain when unset (AWS_* variables, an instance role).
MEDIA_STORAGE = env("MEDIA_STORAGE", default="local")
if MEDIA_STORAGE == "s3" and importlib.util.find_spec("boto3") is None:
    # boto3 is not in the default install (~34 MB most deployments never use): say so at
    # start rather than on the first image an item brings.
    raise ImproperlyConfigured(
        "MEDIA_STORAGE=s3 needs boto3, which comes with the s3 extra: "
        "pip install --require-hashes --no-deps -r requirements/s3.txt (or pip install "
        "'.[s3]'); the image: docker build --build-arg WITH_S3=true"
    )
if MEDIA_STORAGE == "s3":
    _media_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env("MEDIA_S3_BUCKET"),
            "location": env("MEDIA_S3_PREFIX", default="media"),
            "endpoint_url": env("MEDIA_S3_ENDPOINT_URL", default=None),
            "region_name": env("MEDIA_S3_REGION", default=None),
            "access_key": env("MEDIA_S3_ACCESS_KEY_ID", default=None),
            "secret_key": env("MEDIA_S3_SECRET_ACCESS_KEY", default=None),
            "default_acl": None,  # the bucket's own (private) policy
            "file_overwrite": False,  # content-addressed names; never replace another item's
            "querystring_auth": True,
        },
    }
elif MEDIA_STORAGE == "local":
    _media_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
else:
    raise ImproperlyConfigured(f"MEDIA_STORAGE must be local or s3, not {MEDIA_STORAGE!r}")
STORAGES = {
    "default": _media_storage,
    # Hashed and gzipped names once collectstatic ran (the image), plain ones before it.
    "staticfiles": {"BACKEND": "lib.staticfiles.CollectedStaticFilesStorage"},
}

# --- Operations: error reports (lib/sentry.py) ---------------------------------------------
# With a DSN, errors of the web and the workers go to Sentry (or a compatible service such as
# GlitchTip) without request bodies, local variables, cookies or users, and with secrets
# redacted as in the logs. Unset: the SDK is not started and nothing is sent.
SENTRY_DSN = env("SENTRY_DSN", default="")
sentry.init(
    dsn=SENTRY_DSN,
    environment=env("SENTRY_ENVIRONMENT", default=""),
    release=env("SENTRY_RELEASE", default=""),
    # Share of requests and tasks also sent as performance traces (0: errors only).
    traces_sample_rate=env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0),
)

# --- Operations: worker liveness (labelers/liveness.py) -------------------------------------
# Each worker process writes a heartbeat this often (0: off) with the labels it holds; one
# silent for WORKER_DEAD_AFTER_SECONDS is dead (killed, its machine gone): the dispatch takes
# its running and held labels back at once instead of after their lease (LABEL_LEASE_SECONDS)
# or Redis's visibility timeout.
WORKER_HEARTBEAT_SECONDS = env.float("WORKER_HEARTBEAT_SECONDS", default=2.0)
WORKER_DEAD_AFTER_SECONDS = env.float("WORKER_DEAD_AFTER_SECONDS", default=15.0)

# Hash banks (issue 28): a newly banked hash is matched against the items hashed this many
# days back (the retroactive match).
BANK_RETRO_DAYS = env.int("BANK_RETRO_DAYS", default=30)
# Seconds of image hashing one dispatch sweep may spend before it leaves the rest of its
# received items for the next sweep (PDQ of a large PNG is ~40 ms of CPU).
BANK_HASH_BUDGET_SECONDS = env.float("BANK_HASH_BUDGET_SECONDS", default=2.0)
