import pytest
from django.core.management import call_command

from labelers import services, tasks
from labelers.models import Label, RelabelRun
from moderation.models import Item

pytestmark = pytest.mark.django_db


def test_relabel_with_a_new_version_labels_every_item_once(
    fake_api, post_webhook, source, dispatch, django_capture_on_commit_callbacks
):
    for n in range(5):
        post_webhook(source, {"external_id": f"e{n}", "content_text": f"text {n}"})
    assert len(fake_api.calls) == 5
    labeler = source.labelers.get()
    v2 = services.labeler_version_create(labeler=labeler, criteria_text="[invert] new policy")
    with django_capture_on_commit_callbacks(execute=True):
        run = tasks.relabel_start(labeler_version=v2, source=source)
    assert (run.total, run.created) == (5, 5)
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
    assert again.created == 0 and len(fake_api.calls) == 10


def test_relabel_with_the_same_version_and_content_costs_nothing(
    fake_api, post_webhook, source, django_capture_on_commit_callbacks
):
    post_webhook(source, {"external_id": "a", "content_text": "same"})
    post_webhook(source, {"external_id": "b", "content_text": "same"})
    assert len(fake_api.calls) == 1  # the second was a cache hit


def test_the_command_takes_a_source_and_a_date(fake_api, post_webhook, source, capsys):
    post_webhook(source, {"external_id": "a", "content_text": "x"})
    labeler = source.labelers.get()
    services.labeler_version_create(labeler=labeler, criteria_text="new")
    call_command("relabel", labeler.slug, "--source", source.slug, "--since", "2020-01-01")
    run = RelabelRun.objects.get()
    assert (run.total, run.created) == (1, 1)
    assert "1 labels queued" in capsys.readouterr().out
