"""Fixtures shared by every test. Helpers live in testkit/ (and the apps' tests folders)."""

import fcntl
import json
import os
import re
import secrets
import shutil
import sqlite3
from contextlib import closing, suppress
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.contrib.auth import hashers
from django.core.management import call_command
from django.db import connections
from pytest_django.plugin import blocking_manager_key

from config.celery import app as celery_app
from labelers import guarded, tasks
from labelers.breaker import get_breaker
from labelers.routing import routing_cache
from labelers.tasks import label_sweep_task
from moderation.routing import queues_cache, rules_invalidate
from moderation.selectors.queue import queue_figures_cache
from moderation.selectors.sources import source_cache
from moderation.services.banks import pdq_index_forget
from moderation.tests.factories import SourceFactory
from testkit import processes
from testkit.browser import SCREENSHOT_DIR, launched_browser
from testkit.fake_api import FakeLabelAPI
from testkit.signing import signed_headers

# Unit tests run tasks in-process; the end-to-end tests start real workers instead.
celery_app.conf.task_always_eager = True
# The test client speaks plain http; with DATABASE_URL set (production settings) every request
# would be redirected to https. tests/test_deploy_check.py tests the production values.
settings.SECURE_SSL_REDIRECT = False


def _redis_keys_of_this_run() -> str:
    """On a Redis run, keys of this run's own: two runs on one machine share its Redis, and
    with the same queue names and breaker keys they took each other's messages and reset
    each other's breaker. Nothing shared is flushed; the workers and servers the end-to-end
    tests start inherit the prefix through the environment (testkit/processes.app_env)."""
    redis_urls = (settings.CELERY_BROKER_URL, settings.LABEL_THROTTLE_REDIS_URL)
    if not any(url.startswith(("redis://", "rediss://")) for url in redis_urls):
        return ""
    prefix = f"{settings.REDIS_KEY_PREFIX}test-{os.getpid()}-{secrets.token_hex(4)}:"
    os.environ["REDIS_KEY_PREFIX"] = prefix
    # Settings were read before this file: set the prefix where it was already copied.
    settings.REDIS_KEY_PREFIX = prefix
    if settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        options = {**settings.CELERY_BROKER_TRANSPORT_OPTIONS, "global_keyprefix": prefix}
        settings.CELERY_BROKER_TRANSPORT_OPTIONS = options
        celery_app.conf.broker_transport_options = options
    return prefix


_RUN_REDIS_PREFIX = _redis_keys_of_this_run()


# Per-run SQLite test files are named <stem>-<pid>_<token><suffix>, plus SQLite's -wal/-shm.
_RUN_FILE = re.compile(r"-(?P<pid>\d+)_[0-9a-f]+$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_sqlite_files(name: str) -> None:
    for path in (name, f"{name}-wal", f"{name}-shm", f"{name}-journal"):
        with suppress(FileNotFoundError):
            os.remove(path)


def _remove_stale_sqlite_files(base: Path) -> None:
    """Files a killed run (no teardown) left behind: those of runs whose process is gone."""
    for path in base.parent.glob(f"{base.stem}-*{base.suffix}*"):
        stem = path.name.split(base.suffix, 1)[0]
        match = _RUN_FILE.search(stem)
        if match and not _pid_alive(int(match["pid"])):
            with suppress(FileNotFoundError):
                path.unlink()


def _drop_leftover_postgres_db(alias: str, name: str) -> None:
    """Django drops the test database, but only warns if a session is still open on it. The
    name is this run's own, so any session on it is ours: end them and drop it."""
    connection = connections[alias]
    with connection._nodb_cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is None:
            return
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )
        cursor.execute(f"DROP DATABASE {connection.ops.quote_name(name)}")


# Running in parallel (pytest-xdist; `dev.py test` passes -n when no tests are named).
# Each worker is a process of its own: its test database, Redis key prefix (both per process,
# above and below) and DATA_DIR (set here, before it reads its settings) are its own, so
# workers never share the breaker's and throttle's state file, the broker folder or media.
# The tests that start processes share one worker (--dist loadgroup) and so run one at a
# time, as in a serial run: side by side on 2 cores their timings would suffer. The browser
# tests share another: they mostly wait on the browser, and one at a time is enough for them.
# The rest spread over the workers in between; dev.py starts one worker more than there are
# lanes so that they never wait for a lane.
WORKER_FOLDERS = "test-workers"  # in DATA_DIR: <pid of the run>-<worker id>
PROCESS_LANE, BROWSER_LANE = "processes", "browser"
_worker_folders: list[Path] = []


def _remove_stale_worker_folders(base: Path) -> None:
    """Folders of runs that were killed (no teardown): their process is gone."""
    for folder in base.glob("*-gw*"):
        pid = folder.name.split("-", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
    for lock in base.glob(_TEMPLATE_LOCK.format(pid="*") + "*"):  # and its "built" marks
        pid = lock.name.split("-", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            lock.unlink(missing_ok=True)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """-n without --dist schedules by group (xdist's default, load, ignores the groups)."""
    if getattr(config.option, "numprocesses", None) and config.option.dist == "no":
        config.option.dist = "loadgroup"
    # A worker parses the command line again (no --dist there) and decides from that whether
    # to name its tests by group: told nothing, it never did, so no test had a group and
    # the lanes were never kept (two fault tests could start their processes side by side).
    if getattr(config, "workerinput", {}).get(_GROUPED_WORKERS):
        config.option.loadgroup = True


_GROUPED_WORKERS = "lanes"  # in each worker's workerinput: the controller schedules by group


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """In the controlling process, for each worker before it starts."""
    node.workerinput[_GROUPED_WORKERS] = node.config.option.dist == "loadgroup"


def pytest_configure(config):
    # Declared here too: without xdist (-p no:xdist) nothing declares the lanes' marker, and
    # --strict-markers refused every test of a lane at collection.
    config.addinivalue_line("markers", "xdist_group(name): the tests run on one xdist worker")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes(config, specs):
    """Runs in the controlling process before the workers start: each worker's environment
    gets a DATA_DIR of its own below this run's, and the shared screenshots folder."""
    base = Path(settings.DATA_DIR) / WORKER_FOLDERS
    _remove_stale_worker_folders(base)
    templates = _plan_template_databases(config, base)
    for spec in specs:
        folder = base / f"{os.getpid()}-{spec.id}"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        _worker_folders.append(folder)
        spec.env["DATA_DIR"] = str(folder)
        spec.env["SCREENSHOT_DIR"] = str(SCREENSHOT_DIR)
        if templates:
            spec.env[TEMPLATES_ENV] = json.dumps(templates)


def pytest_unconfigure(config):
    for folder in _worker_folders:
        shutil.rmtree(folder, ignore_errors=True)


# The workers' test databases are clones of one migrated database per run: the first worker
# that needs a database migrates this run's template (the others wait for it), then each
# worker copies it under its own name (PostgreSQL: CREATE DATABASE ... TEMPLATE, as Django's
# --parallel does; SQLite: the backup API). Migrating in every worker cost each pass three
# migrations side by side on 2 cores. The template's name is this run's own, like the
# workers' databases; the controlling process removes it when the run ends.
TEMPLATES_ENV = "TEST_DB_TEMPLATES"  # JSON for the workers: {"lock": path, "databases": {...}}
_TEMPLATE_LOCK = "{pid}-template.lock"  # in the workers' folder, like their folders
_run_templates: dict = {}


def _plan_template_databases(config, base: Path) -> dict:
    """In the controlling process: this run's template names (nothing is created yet)."""
    if config.getvalue("reuse_db") or config.getvalue("nomigrations"):
        return {}
    token = f"{os.getpid()}_{secrets.token_hex(4)}"
    databases = {}
    for alias, db in settings.DATABASES.items():
        test = db.get("TEST") or {}
        if db["ENGINE"] == "django.db.backends.sqlite3":
            if not test.get("NAME") or test["NAME"] == ":memory:":
                continue  # in memory: nothing to copy between processes
            name = Path(test["NAME"])
            _remove_stale_sqlite_files(name)
            databases[alias] = str(name.with_name(f"{name.stem}-template-{token}{name.suffix}"))
        elif db["ENGINE"] == "django.db.backends.postgresql":
            databases[alias] = f"{test.get('NAME') or 'test_' + db['NAME']}_template_{token}"
    if not databases:
        return {}
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock = base / _TEMPLATE_LOCK.format(pid=os.getpid())
    _run_templates.update(lock=str(lock), databases=databases)
    return dict(_run_templates)


def pytest_sessionfinish(session):
    """In the controlling process, after every worker ended: remove this run's templates."""
    if not _run_templates:
        return
    with session.config.stash[blocking_manager_key].unblock():
        for alias, name in _run_templates["databases"].items():
            if settings.DATABASES[alias]["ENGINE"] == "django.db.backends.sqlite3":
                _remove_sqlite_files(name)
            else:
                _drop_leftover_postgres_db(alias, name)
            with suppress(FileNotFoundError):
                os.remove(f"{_run_templates['lock']}.{alias}")
        connections.close_all()
    with suppress(FileNotFoundError):
        os.remove(_run_templates["lock"])


def _clone_database(connection, template: str, name: str) -> None:
    if connection.vendor == "sqlite":
        _remove_sqlite_files(name)
        with closing(sqlite3.connect(template)) as source, closing(sqlite3.connect(name)) as copy:
            source.backup(copy)
        return
    quote = connection.ops.quote_name
    with connection._nodb_cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {quote(name)} WITH TEMPLATE {quote(template)}")


def _create_test_db_from_template(creation, template: str, lock: str):
    """A stand-in for creation.create_test_db: the same database, copied from the run's
    template (migrated here first if no worker did yet) instead of migrated again."""
    connection, alias = creation.connection, creation.connection.alias
    migrate_into = creation.create_test_db

    def create_test_db(verbosity=1, autoclobber=False, serialize=True, keepdb=False):
        name = creation._get_test_db_name()
        with open(lock, "a") as held:
            fcntl.flock(held, fcntl.LOCK_EX)  # held until the template is there
            built = Path(f"{lock}.{alias}")
            if not built.exists():
                test, before = connection.settings_dict["TEST"], connection.settings_dict["NAME"]
                own, test["NAME"] = test["NAME"], template
                try:
                    migrate_into(verbosity, autoclobber=True, serialize=False, keepdb=False)
                finally:
                    connection.close()
                    test["NAME"] = own
                    settings.DATABASES[alias]["NAME"] = before
                    connection.settings_dict["NAME"] = before
                built.touch()
        if verbosity >= 1:
            creation.log(f"Copying the template into test database {name} for alias {alias}")
        _clone_database(connection, template, name)
        # What create_test_db does after migrating.
        connection.close()
        settings.DATABASES[alias]["NAME"] = name
        connection.settings_dict["NAME"] = name
        if serialize:
            connection._test_serialized_contents = creation.serialize_db_to_string()
        call_command("createcachetable", database=alias)
        connection.ensure_connection()
        return name

    return create_test_db


_PROCESS_STARTERS = (processes.running_app, processes.start_web, processes.start_worker,
                     processes.start_beat)  # fmt: skip


def _lane(item) -> str | None:
    """The processes lane: e2e tests and the tests of a module that imports a process starter
    (with or without a browser); the browser lane: the other browser tests."""
    module = getattr(item, "module", None)
    names = vars(module).values() if module is not None else ()
    if item.get_closest_marker("e2e") is not None or any(
        value is starter for value in names for starter in _PROCESS_STARTERS
    ):
        return PROCESS_LANE
    if "browser" in getattr(item, "fixturenames", ()):
        return BROWSER_LANE
    return None


@pytest.hookimpl(wrapper=True)  # around xdist's: the marks before it reads them
def pytest_collection_modifyitems(config, items):
    for item in items:
        if lane := _lane(item):
            item.add_marker(pytest.mark.xdist_group(lane))
    result = yield
    if getattr(config.option, "loadgroup", False):
        for item in items:
            if (lane := _lane(item)) and not item.nodeid.endswith(f"@{lane}"):
                _name_by_group(item, lane)
    return result


def _name_by_group(item, lane: str) -> None:
    """What xdist's worker does for a grouped test (`nodeid@group`, by which the controller
    keeps a group on one worker): xdist 3.8 sets item._nodeid, which pytest 9.2 no longer
    reads (a node's id is its `_id`), so no test was grouped and the lanes were not kept."""
    grouped = f"{item.nodeid}@{lane}"
    node_id = getattr(item, "_id", None)
    if node_id is not None and hasattr(type(node_id), "parse"):
        item._id = type(node_id).parse(grouped)
    else:
        item._nodeid = grouped


@pytest.fixture(scope="session")
def django_db_modify_db_settings(
    django_db_modify_db_settings_parallel_suffix, django_db_keepdb, django_db_blocker
):
    """A test database of this run's own. With one fixed name, two runs in one checkout (or
    on one PostgreSQL server) created, flushed and dropped each other's database. The
    processes the end-to-end tests start follow through processes.database_url(), which
    reads the connection's settings. --reuse-db keeps the fixed name it needs to reuse."""
    if django_db_keepdb:
        yield
        return
    token = f"{os.getpid()}_{secrets.token_hex(4)}"
    created = []
    for alias, db in settings.DATABASES.items():
        test = db.setdefault("TEST", {})
        if db["ENGINE"] == "django.db.backends.sqlite3":
            if not test.get("NAME") or test["NAME"] == ":memory:":
                continue  # in memory: private to this process anyway
            base = Path(test["NAME"])
            _remove_stale_sqlite_files(base)
            test["NAME"] = str(base.with_name(f"{base.stem}-{token}{base.suffix}"))
        else:
            test["NAME"] = f"{test.get('NAME') or 'test_' + db['NAME']}_{token}"
        created.append((alias, db["ENGINE"], test["NAME"]))
    templates = json.loads(os.environ.get(TEMPLATES_ENV) or "{}")
    for alias, template in templates.get("databases", {}).items():
        creation = connections[alias].creation
        creation.create_test_db = _create_test_db_from_template(
            creation, template, templates["lock"]
        )
    yield
    # pytest-django has destroyed the databases by now (this fixture is torn down after
    # django_db_setup); remove what that leaves behind.
    for alias, engine, name in created:
        if engine == "django.db.backends.sqlite3":
            _remove_sqlite_files(name)
        elif engine == "django.db.backends.postgresql":
            with django_db_blocker.unblock():
                _drop_leftover_postgres_db(alias, name)


@pytest.fixture(scope="session", autouse=True)
def _quick_password_hashing():
    """testkit.hashers: the real algorithm at a thousandth of its iterations, first in the
    list (so it hashes; the others still verify)."""
    settings.PASSWORD_HASHERS = [
        "testkit.hashers.QuickPBKDF2PasswordHasher",
        *settings.PASSWORD_HASHERS,
    ]
    hashers.get_hashers.cache_clear()
    hashers.get_hashers_by_algorithm.cache_clear()


@pytest.fixture(scope="session", autouse=True)
def _remove_this_runs_redis_keys():
    """The run's own keys only (its prefix); what the breaker and kombu leave would
    otherwise stay in the shared Redis for up to a day."""
    yield
    if not _RUN_REDIS_PREFIX:
        return
    urls = {settings.CELERY_BROKER_URL, settings.LABEL_THROTTLE_REDIS_URL}
    for url in urls:
        if url.startswith(("redis://", "rediss://")):
            with suppress(redis.RedisError):
                client = redis.Redis.from_url(url)
                for key in client.scan_iter(match=f"{_RUN_REDIS_PREFIX}*", count=1000):
                    client.delete(key)


@pytest.fixture(autouse=True)
def _forget_process_caches():
    """Per-process caches (key refusals, sources, routing) must not carry one test's state
    into the next: the database is rolled back between tests, and ids are reused."""

    def clear():
        guarded._refusal_seen.clear()
        routing_cache.clear()
        source_cache.clear()
        queue_figures_cache.clear()
        rules_invalidate()
        queues_cache.clear()
        pdq_index_forget()

    clear()
    yield
    clear()


@pytest.fixture(autouse=True)
def _close_the_breaker():
    """The breaker's state is shared (a file in DATA_DIR, or Redis): one test's outage must
    not pause the next test's labels."""
    get_breaker().reset()
    yield
    get_breaker().reset()


@pytest.fixture(autouse=True)
def _empty_broker_queue(request, monkeypatch):
    """Unit tests run tasks eagerly, so the broker's labels queue is empty by construction;
    asking a shared broker (where end-to-end tests leave messages) would make them flaky."""
    if request.node.get_closest_marker("e2e") is None:
        monkeypatch.setattr(tasks, "labels_queued", lambda: 0)


@pytest.fixture(scope="session")
def fake_api_server():
    server = FakeLabelAPI(key="test-key").start()
    yield server
    server.stop()


@pytest.fixture
def fake_api(fake_api_server, settings):
    fake_api_server.reset()
    settings.ZENTROPI_API_URL = fake_api_server.url
    settings.ZENTROPI_API_KEY = "test-key"
    settings.LABEL_READ_TIMEOUT = 2.0
    return fake_api_server


@pytest.fixture
def source(db):
    return SourceFactory()


@pytest.fixture
def dispatch(django_capture_on_commit_callbacks):
    """What beat does every second: enqueue due labels (tasks run eagerly in unit tests)."""

    def run():
        with django_capture_on_commit_callbacks(execute=True):
            return label_sweep_task()

    return run


@pytest.fixture
def post_webhook(client, dispatch):
    """POST a signed body to a source's webhook, then dispatch its labels as beat would."""

    def post(source, payload, *, raw: bytes | None = None, headers: dict | None = None, **kw):
        body = raw if raw is not None else json.dumps(payload).encode()
        sent = headers if headers is not None else signed_headers(source._secret, body, **kw)
        response = client.post(
            f"/webhooks/{source.slug}/", data=body, content_type="application/json", headers=sent
        )
        dispatch()
        return response

    return post


@pytest.fixture
def browser(live_server):
    """Debian's Chromium, headless, for the browser tests (testkit/browser.py)."""
    yield from launched_browser()
