#!/usr/bin/env python3
"""Bootstrap for a fresh machine: needs only Python 3.11+ and git.

python3 dev.py run    install into .venv, set up on first run, then run and supervise
                      web + worker + beat (embedded default); options: --host, --port,
                      --web-workers, --concurrency, --demo (sample items labeled by a
                      local stand-in for the API, no key needed, in data/demo)
python3 dev.py test   install into .venv (with test extras), then run the test suite (on
                      every core when no tests are named; TEST_WORKERS=N to choose)
python3 dev.py lint   ruff format --check, ruff check, mypy, makemigrations --check
python3 dev.py manage [--demo] COMMAND ...
                      manage.py in .venv, on run's database (--demo: the demo's)
python3 dev.py lock   re-pin requirements/*.txt (with hashes) from pyproject.toml's ranges;
                      `lock --upgrade` takes the newest releases the ranges allow

This file is process management only (stdlib, no Django): the app's own setup is the
`firstrun` management command.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import venv
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
# Pinned, hashed dependency sets compiled from pyproject.toml's ranges (`dev.py lock`): base
# for the image, dev (base + the test and s3 extras) for development and CI; s3.txt (base +
# the s3 extra) is for an image built with WITH_S3=true.
LOCKS = {"": ROOT / "requirements" / "base.txt", "test": ROOT / "requirements" / "dev.txt"}
TOOLS_VENV = ROOT / ".venv-tools"


def ensure_venv(extras: str) -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - this file runs before the venv exists
        sys.exit("Python 3.11 or newer is needed.")
    # Two commands started side by side (CI's two test passes, a test run beside `run`) would
    # install into one .venv at once and break each other's install: one at a time.
    with open(ROOT / ".venv.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        _ensure_venv(extras)


def _ensure_venv(extras: str) -> None:
    if not PYTHON.exists():
        print("Creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / f".installed-{extras or 'base'}"
    lock = LOCKS[extras]
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + lock.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return
    print(f"Installing {lock.relative_to(ROOT)} and the project into .venv ...", flush=True)
    pip = [str(PYTHON), "-m", "pip", "install", "-q"]
    # Exactly the locked versions, each checked against its hash; then the project itself
    # (editable, nothing more: its dependencies are all in the lock).
    subprocess.run([*pip, "--require-hashes", "--no-deps", "-r", str(lock)], check=True)
    subprocess.run([*pip, "--no-deps", "-e", "."], check=True, cwd=ROOT)
    stamp.write_text(digest)


def lock(rest: list[str]) -> int:
    """Compile the lock files with pip-tools in a venv of their own (not the project's)."""
    pip_compile = TOOLS_VENV / "bin" / "pip-compile"
    if not pip_compile.exists():
        venv.EnvBuilder(with_pip=True).create(TOOLS_VENV)
        tools_pip = [str(TOOLS_VENV / "bin" / "pip"), "install", "-q", "--upgrade"]
        subprocess.run([*tools_pip, "pip", "pip-tools>=7.4"], check=True)
    common = [
        str(pip_compile), "-q", "--generate-hashes", "--allow-unsafe", "--strip-extras",
        "--no-emit-index-url", "--no-emit-find-links", *rest,
    ]  # fmt: skip
    # s3.txt and dev.txt are compiled under base.txt's pins (their .in: -c base.txt): one
    # version each. The tests exercise the S3 backend, so dev has the s3 extra too.
    for args in (
        ["-o", "requirements/base.txt", "pyproject.toml"],
        ["--extra", "s3", "-o", "requirements/s3.txt", "pyproject.toml",
         "requirements/s3.in"],
        ["--extra", "test", "--extra", "s3", "-o", "requirements/dev.txt", "pyproject.toml",
         "requirements/dev.in"],
    ):  # fmt: skip
        if code := subprocess.call([*common, *args], cwd=ROOT):
            return code
    return 0


def test_args(rest: list[str]) -> list[str]:
    """pytest's arguments: the user's, plus one worker process per core (pytest-xdist, at
    least 3, at most 4) when they name no tests and choose no workers: the whole suite, or a
    -k/-m selection of it. Named tests (paths, path::test) run in this process, without the
    workers' start-up. TEST_WORKERS sets the number (0: none)."""
    chose_workers = "no:xdist" in rest or any(
        arg in ("-n", "--numprocesses", "--tx") or arg.startswith(("-n", "--numprocesses="))
        for arg in rest
    )
    named_tests = any(
        not arg.startswith("-") and Path(arg.split("::", 1)[0]).exists() for arg in rest
    )
    if chose_workers or named_tests:
        return rest
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    # One per core, and at least three: the processes and browser lanes (conftest.py) mostly
    # wait, and a third worker runs the other tests meanwhile.
    workers = os.environ.get("TEST_WORKERS") or str(min(max(cores or 1, 3), 4))
    return ["-n", workers, *rest] if workers.isdigit() and int(workers) > 1 else rest


def run(*args: str, env: dict[str, str] | None = None) -> int:
    return subprocess.call([str(PYTHON), *args], cwd=ROOT, env=env)


def free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def demo_data_environment() -> dict[str, str]:
    """The demo's own database and files (data/demo), for `run --demo` and `manage --demo`."""
    return {
        **os.environ,
        "DEMO_MODE": "true",
        "DATA_DIR": os.environ.get("DATA_DIR", str(ROOT / "data" / "demo")),
    }


def demo_environment(python: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """`run --demo`: a database of its own (data/demo), the local labeling stand-in on a free
    port with a throwaway key, and every page marked as a demo."""
    port, key = free_port(), secrets.token_urlsafe(16)
    env = {
        **demo_data_environment(),
        "ZENTROPI_API_URL": f"http://127.0.0.1:{port}",
        "ZENTROPI_API_KEY": key,
    }
    # The stand-in answers like the hosted API, with a little latency, labeling from words
    # in the text (testkit/fake_api.py); it never leaves this machine.
    stand_in = [python, "-m", "testkit.fake_api", "--port", str(port), "--key", key,
                "--latency", "0.2"]  # fmt: skip
    return env, {"labeling-stand-in": stand_in}


def app_commands(
    python: str, *, host: str, port: int, web_workers: int, concurrency: int
) -> dict[str, list[str]]:
    """The embedded default's processes: gunicorn, and one Celery worker that runs beat."""
    return {
        # Both queues: label tasks, and the dispatch (beat's sweep, relabel runs).
        "worker": [python, "-m", "celery", "-A", "config", "worker", "--beat",
                   "-Q", "labels,dispatch,callbacks",
                   "--pool", "threads", "--concurrency", str(concurrency),
                   # Celery's own lines come every second at INFO: quiet unless asked for.
                   "--loglevel", os.environ.get("CELERY_LOG_LEVEL") or "WARNING"],
        "web": [python, "-m", "gunicorn", "config.wsgi", "--bind", f"{host}:{port}",
                "--workers", str(web_workers), "--access-logfile", "-"],
    }  # fmt: skip


class Supervisor:
    """Runs named commands and restarts one that exits, as compose's restart policy or
    systemd would; gives up if children exit more than `max_restarts` times a minute.
    Pending work lives in the database, so nothing is lost while a child restarts."""

    def __init__(
        self,
        commands: dict[str, list[str]],
        *,
        env: dict[str, str] | None = None,
        max_restarts: int = 5,
        log: Callable[[str], object] = print,
    ):
        self.commands = commands
        self.env = env
        self.max_restarts = max_restarts
        self.log = log
        self.children: dict[str, subprocess.Popen] = {}
        self.restarts: list[float] = []
        self.stopping = False

    def _start(self, name: str) -> None:
        # Own process group: a worker's beat is its child, and a stop must reach it too.
        self.children[name] = subprocess.Popen(
            self.commands[name], env=self.env, cwd=ROOT, start_new_session=True
        )

    def run(self, *, poll: float = 0.5) -> int:
        for name in self.commands:
            self._start(name)
        try:
            while not self.stopping:
                time.sleep(poll)
                for name, child in list(self.children.items()):
                    if child.poll() is None or self.stopping:
                        continue
                    now = time.monotonic()
                    self.restarts = [t for t in self.restarts if now - t < 60] + [now]
                    if len(self.restarts) > self.max_restarts:
                        self.log(f"{name} keeps exiting (code {child.returncode}); giving up")
                        return 1
                    self.log(f"{name} exited with {child.returncode}; restarting it")
                    self._start(name)
            return 0
        finally:
            self.stop_children()

    def stop(self, *_) -> None:
        self.stopping = True

    def stop_children(self, timeout: float = 15) -> None:
        for child in self.children.values():
            if child.poll() is None:
                _signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in self.children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(child, signal.SIGKILL)
                child.wait(timeout=5)


def _signal_group(child: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, sig)


def serve(rest: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dev.py run")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8, help="labeling threads")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="a demo workspace without an API key: sample items in data/demo, labeled by a "
        "local stand-in for the labeling API",
    )
    options = parser.parse_args(rest)
    ensure_venv("")
    env, extra = demo_environment(str(PYTHON)) if options.demo else (None, {})
    if code := run("manage.py", "firstrun", env=env):
        return code
    commands = app_commands(
        str(PYTHON),
        host=options.host,
        port=options.port,
        web_workers=options.web_workers,
        concurrency=options.concurrency,
    )
    supervisor = Supervisor(
        {**extra, **commands},
        env=env,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    if options.demo and (code := run("manage.py", "seed_demo", env=env)):
        return code
    signal.signal(signal.SIGINT, supervisor.stop)
    signal.signal(signal.SIGTERM, supervisor.stop)
    print(f"Moderation queue running at http://{options.host}:{options.port}/", flush=True)
    if options.demo:
        print("Demo mode: sample content labeled by a local stand-in; log in with the accounts "
              f"in {env['DATA_DIR']}/first-run-credentials.txt", flush=True)  # fmt: skip
    return supervisor.run()


def manage_command(rest: list[str]) -> tuple[list[str], dict[str, str] | None]:
    """`manage [--demo] COMMAND ...`: manage.py with the .venv's Python, on the database
    `run` uses (with --demo, the demo's in data/demo; a plain `python manage.py` there would
    find no demo tables and leave a fresh database and secret key behind in data/)."""
    demo = bool(rest) and rest[0] == "--demo"
    args = rest[1:] if demo else rest
    return ["manage.py", *args], demo_data_environment() if demo else None


def main() -> int:
    command = sys.argv[1] if len(sys.argv) > 1 else "run"
    rest = sys.argv[2:]
    if command == "run":
        return serve(rest)
    if command == "test":
        ensure_venv("test")
        return run("-m", "pytest", *test_args(rest))
    if command == "lock":
        return lock(rest)
    if command == "manage":
        ensure_venv("")
        args, env = manage_command(rest)
        return run(*args, env=env)
    if command == "lint":
        ensure_venv("test")
        for args in (
            ("-m", "ruff", "format", "--check", "."),
            ("-m", "ruff", "check", "."),
            ("-m", "mypy"),
            ("manage.py", "makemigrations", "--check", "--dry-run"),
        ):
            if code := run(*args):
                return code
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
