"""The embedded default's process supervisor (dev.py): a child that exits is restarted, a
child that keeps exiting makes it give up, and stopping it stops every child."""

from __future__ import annotations

import sys
import threading

import dev
from config.celery import wedged
from testkit.processes import wait_for

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


def crash_once(marker) -> list[str]:
    """Exits with 3 the first time (leaving a marker), runs on the second."""
    code = (
        "import pathlib, sys, time\n"
        f"p = pathlib.Path({str(marker)!r})\n"
        "if not p.exists():\n"
        "    p.write_text('1'); sys.exit(3)\n"
        "p.write_text('2'); time.sleep(120)\n"
    )
    return [sys.executable, "-c", code]


def start(supervisor: dev.Supervisor) -> tuple[threading.Thread, dict]:
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("code", supervisor.run(poll=0.05)))
    thread.start()
    return thread, result


def test_a_child_that_exits_is_restarted_and_stop_ends_every_child(tmp_path):
    lines: list[str] = []
    marker = tmp_path / "marker"
    supervisor = dev.Supervisor({"web": SLEEPER, "worker": crash_once(marker)}, log=lines.append)
    thread, result = start(supervisor)
    try:
        wait_for(lambda: marker.exists() and marker.read_text() == "2", timeout=30, what="restart")
        assert lines == ["worker exited with 3; restarting it"]
        children = list(supervisor.children.values())
        assert all(child.poll() is None for child in children)
    finally:
        supervisor.stop()
        thread.join(timeout=30)
    assert not thread.is_alive() and result["code"] == 0
    assert all(child.poll() is not None for child in children)


def test_it_gives_up_on_a_child_that_keeps_exiting(tmp_path):
    lines: list[str] = []
    supervisor = dev.Supervisor(
        {"web": SLEEPER, "worker": [sys.executable, "-c", "raise SystemExit(5)"]},
        max_restarts=2,
        log=lines.append,
    )
    thread, result = start(supervisor)
    thread.join(timeout=30)
    assert not thread.is_alive() and result["code"] == 1
    assert lines[-1] == "worker keeps exiting (code 5); giving up"
    assert supervisor.children["web"].poll() is not None  # the healthy one was stopped too


def test_the_embedded_default_runs_web_and_a_worker_with_beat():
    commands = dev.app_commands("py", host="h", port=1, web_workers=2, concurrency=8)
    assert set(commands) == {"web", "worker"}
    assert "--beat" in commands["worker"] and "gunicorn" in commands["web"]


def test_the_embedded_worker_consumes_the_labels_and_the_dispatch_queue():
    worker = dev.app_commands("py", host="h", port=1, web_workers=2, concurrency=8)["worker"]
    assert {"labels", "dispatch"} <= set(worker[worker.index("-Q") + 1].split(","))


def test_a_worker_idle_while_messages_wait_is_taken_as_wedged():
    assert wedged(running=0, idle_seconds=45, waiting=3, limit=30)
    assert not wedged(running=1, idle_seconds=45, waiting=3, limit=30)  # busy, not wedged
    assert not wedged(running=0, idle_seconds=10, waiting=3, limit=30)  # idle a moment
    assert not wedged(running=0, idle_seconds=45, waiting=0, limit=30)  # nothing to fetch
    assert not wedged(running=0, idle_seconds=45, waiting=3, limit=0)  # watchdog off


def test_the_demo_runs_the_labeling_stand_in_on_a_database_of_its_own(monkeypatch):
    monkeypatch.delenv("DATA_DIR", raising=False)
    env, extra = dev.demo_environment(sys.executable)
    assert env["DEMO_MODE"] == "true" and env["DATA_DIR"].endswith("data/demo")
    stand_in = extra["labeling-stand-in"]
    assert stand_in[1:3] == ["-m", "testkit.fake_api"]
    port = stand_in[stand_in.index("--port") + 1]
    assert env["ZENTROPI_API_URL"] == f"http://127.0.0.1:{port}"
    assert stand_in[stand_in.index("--key") + 1] == env["ZENTROPI_API_KEY"]


def test_manage_with_demo_runs_on_the_demos_database_not_a_fresh_one_in_data(monkeypatch):
    """README's unlock command for the demo (`dev.py manage --demo axes_reset`): a plain
    `manage.py` would miss the demo's database and leave a new one in data/."""
    monkeypatch.delenv("DATA_DIR", raising=False)
    args, env = dev.manage_command(["--demo", "axes_reset"])
    assert args == ["manage.py", "axes_reset"]
    assert env is not None and env["DEMO_MODE"] == "true"
    assert env["DATA_DIR"].endswith("data/demo")
    assert dev.manage_command(["axes_reset"]) == (["manage.py", "axes_reset"], None)


def test_the_embedded_worker_logs_quietly_unless_celery_log_level_says_otherwise(monkeypatch):
    monkeypatch.delenv("CELERY_LOG_LEVEL", raising=False)
    worker = dev.app_commands("py", host="h", port=1, web_workers=2, concurrency=8)["worker"]
    assert worker[worker.index("--loglevel") + 1] == "WARNING"
    monkeypatch.setenv("CELERY_LOG_LEVEL", "INFO")
    worker = dev.app_commands("py", host="h", port=1, web_workers=2, concurrency=8)["worker"]
    assert worker[worker.index("--loglevel") + 1] == "INFO"
