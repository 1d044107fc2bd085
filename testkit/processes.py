"""Start the product's real processes (gunicorn, Celery worker + beat) for tests and benches."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path

import redis
import requests
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url() -> str:
    """A URL for the database this process is using (the test database, in tests)."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    auth = s["USER"] + (f":{s['PASSWORD']}" if s.get("PASSWORD") else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def app_env(*, data_dir: Path, api_url: str, api_key: str = "test-key", **extra) -> dict:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "SECRET_KEY": "e2e-secret-key-not-for-production",
        "DATA_DIR": str(data_dir),
        "ZENTROPI_API_URL": api_url,
        "ZENTROPI_API_KEY": api_key,
        "SESSION_COOKIE_SECURE": "false",
        # Plain http on loopback: no TLS proxy in front of these servers.
        "SECURE_SSL_REDIRECT": "false",
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", "filesystem://"),
        "LABEL_SWEEP_INTERVAL": "0.5",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start_worker(
    env: dict,
    *,
    concurrency: int = 4,
    beat: bool = True,
    log: Path | None = None,
    pool: str = "threads",
):
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "--loglevel",
        "WARNING",
        "--without-gossip",
        "--without-mingle",
        "-n",
        f"w{time.monotonic_ns()}@%h",
    ]
    if beat:
        args.append("--beat")
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - child keeps it
    # Own process group: an embedded beat is a child process, and a kill must reach it too.
    return subprocess.Popen(
        args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def start_beat(env: dict, *, folder: Path, log: Path | None = None):
    """Celery beat alone, as in production: exactly one, apart from the workers."""
    args = [
        sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "WARNING",
        "--schedule", str(folder / "celerybeat-schedule"),
    ]  # fmt: skip
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - child keeps it
    return subprocess.Popen(
        args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )


def replace_exited(workers: list, env: dict, folder: Path, *, concurrency: int = 4) -> None:
    """As a process supervisor (compose's restart policy, systemd) would: the newest worker,
    if it exited, is replaced by a fresh one. Celery's Redis transport can exit on a broker
    restart, and the wedge watchdog shuts a stuck worker down on purpose."""
    if workers[-1].poll() is not None:
        log = folder / f"worker{len(workers)}.log"
        workers.append(start_worker(env, concurrency=concurrency, log=log))


def kill_group(proc, *, timeout: float = 20) -> None:
    """Like kill -9 of a worker's machine: the worker and its beat child die at once."""
    _signal_group(proc, signal.SIGKILL)
    proc.wait(timeout=timeout)


def start_web(env: dict, *, port: int, workers: int = 2, log: Path | None = None):
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        "config.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
    ]
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - child keeps it
    proc = subprocess.Popen(
        args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=5)
            return proc
        except requests.RequestException:  # not listening yet, or a first request still slow
            if proc.poll() is not None:
                raise RuntimeError("gunicorn exited at start") from None
            time.sleep(0.2)
    kill_group(proc)
    raise RuntimeError("gunicorn did not start in 30 s")


def _signal_group(proc, sig) -> None:
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def stop(*procs, timeout: float = 20) -> None:
    """Terminate each process and its children (gunicorn workers, an embedded beat)."""
    for proc in procs:
        _signal_group(proc, signal.SIGTERM)
    for proc in procs:
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
        # Whatever is left of the group (a beat child, a stuck worker) goes now.
        _signal_group(proc, signal.SIGKILL)
        proc.wait(timeout=timeout)


class PrivateRedis:
    """A redis-server of the test's own, on a free port: a fault test may restart it without
    touching the machine's Redis, which other processes share. Not persisted, not daemonized:
    it is our child, and stop() always reaps it."""

    def __init__(self, *, data_dir: Path, port: int | None = None):
        self.data_dir = data_dir
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *, timeout: float = 20) -> PrivateRedis:
        args = [
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--daemonize", "no",
            "--dir", str(self.data_dir), "--logfile", "",
        ]  # fmt: skip
        log = open(self.data_dir / "redis.log", "ab")  # noqa: SIM115 - child keeps it
        self.proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        client = redis.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=1, socket_connect_timeout=1
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited at start (port {self.port})")
            try:
                client.ping()
                return self
            except redis.RedisError:
                time.sleep(0.1)
            finally:
                client.close()
        self.stop()
        raise RuntimeError(f"redis-server did not answer within {timeout} s")

    def stop(self, *, timeout: float = 10) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        proc.terminate()  # SIGTERM: redis shuts down; with --save "" it writes nothing
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)

    def restart(self, *, down_for: float = 1.0) -> None:
        """Like a broker restart in production: gone for a moment, back on the same port."""
        self.stop()
        time.sleep(down_for)
        self.start()


def run_in_threads(fn, args, *, threads: int, timeout: float) -> list:
    """fn over args in `threads` threads, results in order; the first exception is raised,
    and taking longer than `timeout` fails the test instead of hanging it."""
    pool = ThreadPoolExecutor(threads)
    try:
        return list(pool.map(fn, args, timeout=timeout))
    finally:
        # Queued calls are dropped; running ones end by their own (HTTP) timeouts.
        pool.shutdown(wait=False, cancel_futures=True)


def wait_for(predicate, *, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@contextmanager
def running_app(*, data_dir: Path, api_url: str, concurrency: int = 4, **extra):
    env = app_env(data_dir=data_dir, api_url=api_url, **extra)
    port = free_port()
    worker = start_worker(env, concurrency=concurrency, log=data_dir / "worker.log")
    try:
        web = start_web(env, port=port, log=data_dir / "web.log")
    except Exception:
        stop(worker)
        raise
    try:
        yield f"http://127.0.0.1:{port}", env
    finally:
        stop(web, worker)
