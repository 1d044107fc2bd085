from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from labelers import dispatch as dispatch_module
from labelers import tasks
from labelers.criteria import labeler_version_create
from labelers.models import Label, RelabelRun
from moderation.models import Item
from moderation.tests.factories import SourceFactory

pytestmark = pytest.mark.django_db


def test_relabel_with_a_new_version_labels_every_item_once(
    fake_api, post_webhook, source, dispatch, django_capture_on_commit_callbacks
):
    for n in range(5):
        post_webhook(source, {"external_id": f"e{n}", "content_text": f"text {n}"})
    assert len(fake_api.calls) == 5
    labeler = source.labelers.get()
    v2 = labeler_version_create(labeler=labeler, criteria_text="[invert] new policy")
    with django_capture_on_commit_callbacks(execute=True):
        run = tasks.relabel_start(labeler_version=v2, source=source)
    run.refresh_from_db()
    assert (run.state, run.total, run.created) == ("done", 5, 5)
    assert len(fake_api.calls) == 5  # relabel work waits in the database for the dispatch
    dispatch()
    assert len(fake_api.calls) == 10
    assert Label.objects.filter(labeler_version=v2, status="done").count() == 5
    # Inverted policy flags all five texts now.
    assert Item.objects.filter(status="flagged").count() == 5
    assert run.progress() == {"total": 5, "done": 5}
    # Running it again adds nothing and calls nothing.
    with django_capture_on_commit_callbacks(execute=True):
        again = tasks.relabel_start(labeler_version=v2, source=source)
    dispatch()
    again.refresh_from_db()
    assert again.created == 0 and len(fake_api.calls) == 10


def test_relabel_with_the_same_version_and_content_costs_nothing(
    fake_api, post_webhook, source, dispatch, django_capture_on_commit_callbacks
):
    post_webhook(source, {"external_id": "a", "content_text": "same"})
    post_webhook(source, {"external_id": "b", "content_text": "same"})
    assert len(fake_api.calls) == 1  # the second was a cache hit
    labeler = source.labelers.get()
    v1 = labeler.current_version

    # The version the items were labeled with: every item has its label; nothing to add.
    with django_capture_on_commit_callbacks(execute=True):
        same = tasks.relabel_start(labeler_version=v1, source=source)
    same.refresh_from_db()
    assert (same.total, same.created) == (2, 0)
    assert len(fake_api.calls) == 1

    # A new version: a label for each item, both fetched, the identical content paid once.
    v2 = labeler_version_create(labeler=labeler, criteria_text="[invert] new policy")
    with django_capture_on_commit_callbacks(execute=True):
        run = tasks.relabel_start(labeler_version=v2, source=source)
    dispatch()  # relabel rows wait in the database; the sweep sends them
    run.refresh_from_db()
    assert (run.total, run.created) == (2, 2)
    labels = Label.objects.filter(labeler_version=v2).order_by("item__external_id")
    assert [(lb.item.external_id, lb.status, lb.cache_hit) for lb in labels] == [
        ("a", "done", False),
        ("b", "done", True),
    ]
    assert [call["criteria_text"] for call in fake_api.calls] == [
        v1.criteria_text,
        "[invert] new policy",
    ]
    assert run.progress() == {"total": 2, "done": 2}


def test_the_command_takes_a_source_and_a_date(fake_api, post_webhook, source, capsys):
    post_webhook(source, {"external_id": "a", "content_text": "x"})
    labeler = source.labelers.get()
    labeler_version_create(labeler=labeler, criteria_text="new")
    call_command("relabel", labeler.slug, "--source", source.slug, "--since", "2020-01-01")
    run = RelabelRun.objects.get()
    assert (run.total, run.created) == (1, 1)
    assert "1 label queued" in capsys.readouterr().out


def two_sources_items():
    """Items of two sources, each routed to its own labeler."""
    forum, shop = SourceFactory(), SourceFactory()
    items = [
        Item.objects.create(
            source=source,
            external_id=f"{source.slug}-{n}",
            webhook_id=f"{source.slug}-{n}",
            content_text=f"{source.slug} text {n}",
            content_hash=f"{source.slug}-{n}",
            status=Item.Status.LABELED,
        )
        for source in (forum, shop)
        for n in range(2)
    ]
    return forum, shop, items


def test_the_admin_relabel_gives_each_item_only_its_own_sources_labelers(
    admin_client, fake_api, dispatch, django_capture_on_commit_callbacks
):
    forum, shop, items = two_sources_items()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/moderation/item/",
            {"action": "relabel", "_selected_action": [item.pk for item in items]},
        )
    assert response.status_code == 302
    dispatch()
    for item in items:
        routed = {labeler.current_version.pk for labeler in item.source.labelers.all()}
        got = set(item.labels.values_list("labeler_version_id", flat=True))
        assert got == routed, item.source.slug
    assert Label.objects.filter(status="done").count() == 4
    assert RelabelRun.objects.count() == 2  # one per labeler version, over its own items


def test_the_admin_relabel_returns_at_once_and_a_task_does_the_work(
    admin_client, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(tasks.relabel_run_task, "apply_async", lambda args, **kw: sent.append(args))
    _, _, items = two_sources_items()
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            "/admin/moderation/item/",
            {"action": "relabel", "_selected_action": [item.pk for item in items]},
        )
    runs = list(RelabelRun.objects.order_by("id"))
    assert [run.state for run in runs] == ["queued", "queued"]
    assert sorted(sent) == [(run.pk,) for run in runs]
    assert not Label.objects.exists()  # nothing was done in the request
    page = admin_client.get("/admin/labelers/relabelrun/").content.decode()
    assert "Queued" in page

    for run in runs:
        assert tasks.relabel_run_task(run.pk) == 2
        run.refresh_from_db()
        assert (run.state, run.total, run.processed, run.created) == ("done", 2, 2, 2)
    assert tasks.relabel_run_task(runs[0].pk) == 0  # a duplicated message does nothing
    assert Label.objects.filter(bulk=True, enqueued_at__isnull=True).count() == 4


def test_the_relabel_run_admin_add_queues_a_background_run(
    admin_client, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(tasks.relabel_run_task, "apply_async", lambda args, **kw: sent.append(args))
    forum, _, _ = two_sources_items()
    version = forum.labelers.get().current_version
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/labelers/relabelrun/add/",
            {"labeler_version": version.pk, "source": forum.pk},
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    run = RelabelRun.objects.get()
    assert run.state == "queued" and sent == [(run.pk,)] and not Label.objects.exists()


def test_a_lost_or_abandoned_relabel_run_is_sent_again_by_the_sweep(source):
    version = source.labelers.get().current_version
    run = dispatch_module.relabel_run_create(labeler_version=version, source=source)
    assert dispatch_module.relabel_runs_lost() == []  # just queued: its message is on its way
    RelabelRun.objects.filter(pk=run.pk).update(updated_at=timezone.now() - timedelta(minutes=2))
    assert dispatch_module.relabel_runs_lost() == [run.pk]
    assert dispatch_module.relabel_runs_lost() == []  # once a minute at most
    RelabelRun.objects.filter(pk=run.pk).update(
        state="running", updated_at=timezone.now() - timedelta(minutes=11)
    )
    assert dispatch_module.relabel_runs_lost() == [run.pk]
    assert dispatch_module.relabel_run_execute(run_id=run.pk) is not None
