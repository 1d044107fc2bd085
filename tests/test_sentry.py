"""Error reports (lib/sentry.py): sent only with SENTRY_DSN, and never carrying content
(request bodies, local variables) or a secret (the API key, signing secrets, tokens)."""

import json
import os
import subprocess
import sys
from pathlib import Path

from lib import sentry

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "zk_live_Q3v9Xr7TfPz1"
WEBHOOK_SECRET = "whsec_c2VjcmV0LXNpZ25pbmcta2V5LWJ5dGVz"


def test_before_send_drops_the_body_and_locals_and_redacts_secrets(settings):
    settings.ZENTROPI_API_KEY = API_KEY
    event = {
        "message": f"labeling failed with key {API_KEY}",
        "request": {
            "url": "https://moderation.example.com/webhooks/forum/",
            "method": "POST",
            "data": {"content_text": "a private message"},
            "cookies": {"sessionid": "abc"},
            "query_string": "q=private+search",
            "headers": {"Authorization": f"Bearer {API_KEY}", "Webhook-Id": "msg_1"},
        },
        "exception": {
            "values": [
                {
                    "type": "RuntimeError",
                    "value": f"signing with {WEBHOOK_SECRET} failed",
                    "stacktrace": {
                        "frames": [
                            {"function": "label", "vars": {"text": "a private message"}},
                        ]
                    },
                }
            ]
        },
        "extra": {"celery-job": {"args": [1, f"mqt_{'t' * 20}"], "kwargs": {}}},
        "spans": [{"op": "db", "data": {"db.params": ["a private message"]}}],
    }
    sent = json.dumps(sentry.before_send(event, {}))
    for secret in (API_KEY, WEBHOOK_SECRET, "mqt_" + "t" * 20):
        assert secret not in sent
    assert "a private message" not in sent
    assert "private+search" not in sent
    assert "sessionid" not in sent
    assert sent.count("[redacted]") == 4
    assert '"Webhook-Id": "msg_1"' in sent  # what is not secret stays, to find the request
    assert '"function": "label"' in sent


def test_breadcrumbs_lose_sql_parameters_and_secrets(settings):
    settings.ZENTROPI_API_KEY = API_KEY
    query = {
        "category": "query",
        "message": 'INSERT INTO "moderation_item" ("content_text") VALUES (%s)',
        "data": {"db.params": ["a private message"], "db.executemany": False},
    }
    log = {"category": "labelers", "message": f"retrying call with key {API_KEY}"}
    sent = json.dumps([sentry.before_breadcrumb(query, {}), sentry.before_breadcrumb(log, {})])
    assert "a private message" not in sent and API_KEY not in sent
    assert "moderation_item" in sent and "retrying call with key [redacted]" in sent


# Run in a process of its own: settings start (or do not start) the SDK, and a report is
# recorded by a transport standing in for Sentry's (there is no network to send it to).
REPORT = """
import json, logging, django, sentry_sdk
from sentry_sdk.transport import Transport

class Recorder(Transport):
    def __init__(self):
        super().__init__()
        self.envelopes = []
    def capture_envelope(self, envelope):
        self.envelopes.append(envelope.serialize().decode())
    def flush(self, timeout, callback=None):
        pass
    def kill(self):
        pass

django.setup()
from django.conf import settings
client = sentry_sdk.get_client()
if not client.is_active():
    print(json.dumps({"active": False}))
    raise SystemExit
recorder = client.transport = Recorder()

def label(text):
    raise RuntimeError(f"the API refused {settings.ZENTROPI_API_KEY} ({WEBHOOK_SECRET})")

try:
    label("CONTENT-MARKER private words")
except RuntimeError:
    sentry_sdk.capture_exception()
logging.getLogger("labelers").error("call failed: Bearer %s", settings.ZENTROPI_API_KEY)
sentry_sdk.flush()
options = client.options
print(json.dumps({
    "active": True,
    "options": [options["send_default_pii"], options["max_request_body_size"],
                options["include_local_variables"], options["before_send"].__module__],
    "integrations": sorted(client.integrations),
    "envelopes": recorder.envelopes,
}))
"""


def report(tmp_path, **env) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", f"WEBHOOK_SECRET = {WEBHOOK_SECRET!r}\n" + REPORT],
        env={
            "PATH": os.environ["PATH"],
            "DATA_DIR": str(tmp_path),
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "ZENTROPI_API_KEY": API_KEY,
            **env,
        },
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_without_a_dsn_the_sdk_is_not_started(tmp_path):
    assert report(tmp_path) == {"active": False}


def test_with_a_dsn_reports_carry_no_content_locals_or_secrets(tmp_path):
    found = report(tmp_path, SENTRY_DSN="https://public@sentry.invalid/1")
    assert found["active"]
    assert found["options"] == [False, "never", False, "lib.sentry"]
    assert {"django", "celery"} <= set(found["integrations"])
    sent = "\n".join(found["envelopes"])
    assert sent.count('"type":"event"') == 2, sent  # the exception, and the error logged
    assert "the API refused [redacted] ([redacted])" in sent
    assert "call failed: Bearer [redacted]" in sent
    assert API_KEY not in sent and WEBHOOK_SECRET not in sent
    assert "CONTENT-MARKER" not in sent  # the frame's local variable `text`
