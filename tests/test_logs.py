"""Log lines: JSON in production, each about an item carrying its id, source and task id,
and never a secret."""

import importlib
import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config import celery as celery_config
from labelers.tasks import label_fetch_task
from lib import logs
from moderation.models import Item
from testkit.fake_api import REJECT_MARKER

pytestmark = pytest.mark.django_db


@pytest.fixture
def json_lines(settings):
    """The production handler (settings.LOGGING's json formatter and filters) on a buffer."""
    formatter_config = dict(settings.LOGGING["formatters"]["json"])
    formatter_class = formatter_config.pop("()")
    module, _, name = formatter_class.rpartition(".")
    formatter = getattr(importlib.import_module(module), name)(**formatter_config)
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(formatter)
    handler.addFilter(logs.RedactSecrets())
    handler.addFilter(logs.AddContext())
    root = logging.getLogger()
    root.addHandler(handler)
    old_level, root.level = root.level, logging.INFO
    logs.clear()
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    root.removeHandler(handler)
    root.level = old_level
    logs.clear()


def test_production_logs_json_and_development_logs_plain_lines(settings):
    assert settings.LOGGING["handlers"]["console"]["formatter"] == settings.LOG_FORMAT
    assert set(settings.LOGGING["formatters"]) == {"plain", "json"}


def test_a_webhook_line_carries_the_item_and_source(fake_api, post_webhook, source, json_lines):
    response = post_webhook(source, {"external_id": "p1", "content_text": "hello"})
    assert response.status_code == 202
    stored = [line for line in json_lines() if line["message"] == "webhook stored item"]
    assert stored, json_lines()
    line = stored[0]
    assert (line["item_id"], line["source_id"], line["source"]) == (
        response.json()["id"],
        source.pk,
        source.slug,
    )
    assert {"time", "level", "logger"} <= set(line)
    assert "hello" not in json.dumps(json_lines()), "content is never logged"


def test_a_task_line_about_a_label_carries_item_source_and_task_id(
    fake_api, post_webhook, source, json_lines
):
    response = post_webhook(source, {"external_id": "r1", "content_text": f"x {REJECT_MARKER}"})
    item = Item.objects.get(pk=response.json()["id"])
    label = item.labels.get()
    label.status, label.attempts = "pending", 0
    label.save()
    # As a worker runs it: the receivers of Celery's signals around the task body (not the
    # signals themselves: the connection upkeep would close the test's database connection).
    celery_config._bind_task_to_logs(task_id="task-123", task=label_fetch_task)
    try:
        label_fetch_task.run(label.pk)
    finally:
        celery_config._unbind_task_from_logs(task=label_fetch_task)
    failed = [line for line in json_lines() if "failed for good" in line["message"]]
    assert failed, json_lines()
    assert failed[-1]["item_id"] == item.pk
    assert failed[-1]["source_id"] == source.pk
    assert failed[-1]["task_id"] == "task-123"
    assert failed[-1]["label_id"] == label.pk
    assert logs.context() == {}, "the next task starts with a clean context"


def test_secrets_are_redacted_from_messages_and_arguments(settings, json_lines):
    settings.ZENTROPI_API_KEY = "zk_live_supersecret"
    logger = logging.getLogger("moderation.test")
    logger.warning("key %s in use", "zk_live_supersecret")
    logger.warning("secret whsec_c2VjcmV0c2VjcmV0 token mqt_abcdef123")
    logger.warning("header Authorization: Bearer abc.def.ghi")
    text = json.dumps(json_lines())
    for secret in ("supersecret", "c2VjcmV0c2VjcmV0", "abcdef123", "abc.def.ghi"):
        assert secret not in text
    assert text.count("[redacted]") == 4


def test_secrets_are_redacted_from_tracebacks_and_stacks(settings, json_lines):
    """A key inside an exception's message reaches the log through the traceback text of
    exc_info (and a stack through stack_info), not through the message: both are redacted."""
    settings.ZENTROPI_API_KEY = "zk_live_supersecret"
    logger = logging.getLogger("moderation.test")
    try:
        raise RuntimeError("the API refused zk_live_supersecret with Bearer abc.def.ghi")
    except RuntimeError:
        logger.exception("call failed")
    logger.warning("where zk_live_supersecret was seen", stack_info=True)
    lines = json_lines()
    text = json.dumps(lines)
    assert "supersecret" not in text and "abc.def.ghi" not in text
    assert "RuntimeError" in lines[0]["exc_info"] and "[redacted]" in lines[0]["exc_info"]
    assert "[redacted]" in lines[1]["stack_info"]


def _log_levels(**env) -> dict:
    """The root's and Celery's levels as settings.py sets them from this environment."""
    clean = {k: v for k, v in os.environ.items() if not k.endswith("LOG_LEVEL")}
    code = (
        "import django, json, logging; django.setup(); "
        "print(json.dumps([logging.getLevelName(logging.getLogger().level), "
        "logging.getLevelName(logging.getLogger('celery.beat').getEffectiveLevel())]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", "SECRET_KEY": "x", **env},
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        check=True,
    )
    root, celery = json.loads(out.stdout.strip().splitlines()[-1])
    return {"app": root, "celery": celery}


def test_celerys_own_lines_are_quiet_by_default_and_the_levels_come_from_the_environment():
    assert _log_levels() == {"app": "INFO", "celery": "WARNING"}
    assert _log_levels(LOG_LEVEL="warning", CELERY_LOG_LEVEL="info") == {
        "app": "WARNING",
        "celery": "INFO",
    }


def test_a_workers_loglevel_sets_celerys_lines_and_leaves_the_apps_at_log_level(settings):
    root, celery = logging.getLogger(), logging.getLogger("celery")
    saved = root.level, celery.level
    try:
        root.setLevel(logging.DEBUG)  # what `celery worker --loglevel DEBUG` does to the root
        celery_config._keep_the_apps_log_level(logger=root, loglevel=logging.DEBUG)
        assert root.level == logging.getLevelName(settings.LOG_LEVEL)
        assert celery.level == logging.DEBUG
    finally:
        root.setLevel(saved[0])
        celery.setLevel(saved[1])
