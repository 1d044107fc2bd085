"""Every item reaches a label or a person, through real processes (gunicorn, a Celery worker
with beat, the fake API over HTTP): some items the API refuses (422), a source with no labeler,
edits sent again, and fresh items arriving while a 400-label relabel backlog drains (the
larger priority test is in test_dispatch_processes)."""

import json
import subprocess
import sys
import time

import pytest
import requests

from labelers.criteria import labeler_default, labeler_version_create, source_setup
from labelers.models import Label, LabelerVersion
from moderation.models import IN_QUEUE, Item
from testkit.fake_api import REJECT_MARKER
from testkit.processes import ROOT, running_app, wait_for
from testkit.seed import items_bulk, labels_bulk
from testkit.signing import signed_headers

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BACKLOG = 400


def seed_backlog(source, version: LabelerVersion) -> None:
    """Items labeled long ago by version 1 (the backlog a relabel with version 2 walks)."""
    items = items_bulk(
        source=source,
        count=BACKLOG,
        prefix="old-",
        text="an old post number {n}",
        status=Item.Status.LABELED,
    )
    labels_bulk(
        items,
        version=version,
        status=Label.Status.DONE,
        label="0",
        confidence=0.9,
        violation_score=0.1,
    )


def test_every_item_ends_labeled_or_before_a_reviewer(fake_api_server, tmp_path):
    fake = fake_api_server
    fake.reset()
    fake.configure(latency=0.1)
    forum, forum_secret, _ = source_setup(name="Forum", slug="forum")
    lonely, lonely_secret, _ = source_setup(name="Lonely", slug="lonely", labelers=[])
    v1 = labeler_default().versions.get()
    seed_backlog(forum, v1)

    # The relabel keeps at most 40 messages queued ahead of fresh work (the default 200 is
    # half this test's backlog): fresh items then wait seconds, the backlog ~25 s.
    with running_app(
        data_dir=tmp_path, api_url=fake.url, concurrency=4, LABEL_BULK_QUEUE_TARGET=40
    ) as (url, env):

        def send(source, secret, external_id, text, expect=202):
            body = json.dumps({"external_id": external_id, "content_text": text}).encode()
            response = requests.post(
                f"{url}/webhooks/{source.slug}/",
                data=body,
                headers=signed_headers(secret, body),
                timeout=30,
            )
            assert response.status_code == expect, response.text
            return response.json()["id"]

        sent = {}
        for n in range(10):
            sent[f"ok-{n}"] = send(
                forum, forum_secret, f"ok-{n}", f"post {n}" + (" hate" if n % 2 else "")
            )
        for n in range(5):
            sent[f"bad-{n}"] = send(forum, forum_secret, f"bad-{n}", f"{REJECT_MARKER} post {n}")
        for n in range(5):
            sent[f"lonely-{n}"] = send(lonely, lonely_secret, f"lonely-{n}", f"alone {n}")
        wait_for(
            lambda: (
                not Item.objects.filter(
                    pk__in=sent.values(), status__in=["received", "labeling"]
                ).exists()
            ),
            timeout=90,
            what="the first items labeled",
        )
        edited = {f"ok-{n}": sent[f"ok-{n}"] for n in range(0, 10, 2)}  # calm ones, now hateful
        for key in edited:
            send(forum, forum_secret, key, f"{key} edited: now I hate you")

        # Slower answers from here on: the backlog drains over ~25 s (4 at a time), long
        # enough that fresh items labeled in seconds show they did not wait behind it, even
        # on a busy machine (at 0.1 s, 400 labels drained before a slow run's fresh items).
        fake.configure(latency=0.25)
        # Version 2 of the policy, and a relabel of the whole backlog, as an admin would.
        v2 = labeler_version_create(labeler=v1.labeler, criteria_text="[invert] Label calm")
        relabel = subprocess.run(
            [sys.executable, "manage.py", "relabel", "default", "--source", "forum"],
            env=env,
            cwd=ROOT,
            timeout=120,
            capture_output=True,
            text=True,
        )
        assert relabel.returncode == 0, relabel.stderr[-3000:]
        backlog = Label.objects.filter(labeler_version=v2, item__external_id__startswith="old-")
        assert backlog.count() == BACKLOG
        started = time.monotonic()
        fresh = [send(forum, forum_secret, f"fresh-{n}", f"fresh post {n}") for n in range(5)]
        wait_for(
            lambda: Label.objects.filter(item__in=fresh, status="done").count() == len(fresh),
            timeout=120,
            what="fresh items labeled",
        )
        fresh_wait = time.monotonic() - started
        backlog_left = backlog.exclude(status="done").count()
        print(
            f"\nfresh items labeled {fresh_wait:.1f} s after arriving, {backlog_left} "
            f"of {BACKLOG} backlog labels still to do"
        )
        assert backlog_left > 0, "the fresh items waited for the whole backlog"
        # Told apart: the rest of the backlog only has to drain, so the API answers faster
        # (at 0.25 s a call it took 25 s on 4 threads; the slow API mattered only above).
        fake.configure(latency=0.05)
        wait_for(
            lambda: backlog.filter(status="done").count() == BACKLOG,
            timeout=300,
            interval=1,
            what="the backlog drained",
        )

    everything = Item.objects.all()
    stuck = everything.exclude(status__in=["labeled", *IN_QUEUE])
    assert not stuck.exists(), list(stuck.values_list("external_id", "status")[:10])
    assert Item.objects.filter(source=lonely, status="unrouted").count() == 5
    assert Item.objects.filter(external_id__startswith="bad-", status="failed").count() == 5
    for key, item_id in edited.items():
        item = Item.objects.get(pk=item_id)
        assert item.revision == 2, key
        assert item.labels.filter(revision=2, status="done").exists(), key
    # Version 2 inverts the policy: the calm backlog is flagged now, in front of reviewers.
    assert Item.objects.filter(external_id__startswith="old-", status="flagged").count() == BACKLOG
