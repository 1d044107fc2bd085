"""Criteria versions: drafts are edited in place and never used; publishing switches routing
and relabels nothing; old labels keep their version."""

import html
import re

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError

from labelers import criteria, dispatch
from labelers.criteria import (
    labeler_create,
    labeler_draft_save,
    labeler_version_create,
    labeler_version_publish,
    model_warning,
)
from labelers.models import Label, LabelerVersion
from labelers.routing import source_routing
from labelers.verdict import item_refresh
from moderation.models import Item
from moderation.tests.factories import LabelerFactory, UserFactory

pytestmark = pytest.mark.django_db


def ingest(post_webhook, source, text):
    response = post_webhook(source, {"external_id": text, "content_text": text})
    assert response.status_code in (200, 202), response.content
    return Item.objects.get(pk=response.json()["id"])


def test_a_draft_is_never_routed_to(fake_api, post_webhook, source):
    labeler = source.labelers.get()
    draft = labeler_draft_save(labeler=labeler, criteria_text="Label hate [invert]")
    assert draft.is_draft and draft.number == 2
    assert labeler.current_version.number == 1
    assert [route.version_id for route in source_routing(source.pk)] == [labeler.current_version.pk]
    item = ingest(post_webhook, source, "I hate you")
    assert list(item.labels.values_list("labeler_version__number", flat=True)) == [1]
    assert [call["criteria_text"] for call in fake_api.calls] == ["Label hateful content"]


def test_publishing_a_draft_switches_routing_for_new_items(fake_api, post_webhook, source):
    labeler = source.labelers.get()
    draft = labeler_draft_save(labeler=labeler, criteria_text="Label hate [invert]")
    labeler_version_publish(version=draft)
    assert labeler.current_version == draft
    item = ingest(post_webhook, source, "I hate you")
    assert item.labels.get().labeler_version == draft
    item.refresh_from_db()
    assert item.status == Item.Status.LABELED  # the inverted criteria say "0"


def test_old_labels_keep_their_version_and_nothing_is_relabeled_on_publish(
    fake_api, post_webhook, source
):
    labeler = source.labelers.get()
    item = ingest(post_webhook, source, "I hate you")
    draft = labeler_draft_save(labeler=labeler, criteria_text="Label hate [invert]")
    labeler_version_publish(version=draft)
    ingest(post_webhook, source, "something else")  # a sweep runs after publishing
    label = item.labels.get()
    assert label.labeler_version.number == 1 and label.label == "1"
    item_refresh(item_id=item.pk)
    item.refresh_from_db()
    assert item.status == Item.Status.FLAGGED  # the v1 answer stands until a relabel
    assert len(fake_api.calls) == 2


def test_a_draft_answer_never_decides_the_verdict(fake_api, post_webhook, source):
    labeler = source.labelers.get()
    item = ingest(post_webhook, source, "lovely weather")
    draft = labeler_draft_save(labeler=labeler, criteria_text="Label weather")
    # Should never happen (nothing labels with a draft); if it did, it must not count.
    Label.objects.create(
        item=item,
        labeler_version=draft,
        status=Label.Status.DONE,
        label="1",
        confidence=0.99,
        violation_score=0.99,
        content_hash=item.content_hash,
    )
    item_refresh(item_id=item.pk)
    item.refresh_from_db()
    assert item.status == Item.Status.LABELED


def test_saving_a_draft_again_edits_the_same_draft(db):
    labeler = LabelerFactory()
    first = labeler_draft_save(labeler=labeler, criteria_text="one")
    second = labeler_draft_save(labeler=labeler, criteria_text="two", model="cope-a-9b")
    assert first.pk == second.pk
    second.refresh_from_db()
    assert (second.criteria_text, second.model, second.number) == ("two", "cope-a-9b", 2)


def test_a_labeler_has_at_most_one_draft(db):
    labeler = LabelerFactory()
    labeler_draft_save(labeler=labeler, criteria_text="one")
    with pytest.raises(IntegrityError):
        LabelerVersion.objects.create(
            labeler=labeler, number=9, criteria_text="x", state=LabelerVersion.State.DRAFT
        )


def test_a_draft_cannot_be_relabeled_with(db):
    labeler = LabelerFactory()
    draft = labeler_draft_save(labeler=labeler, criteria_text="two")
    with pytest.raises(ValueError):
        dispatch.relabel_run_create(labeler_version=draft)


def test_publishing_a_published_version_is_refused(db):
    labeler = LabelerFactory()
    with pytest.raises(ValueError):
        labeler_version_publish(version=labeler.current_version)


def test_a_draft_overtaken_by_a_published_version_is_published_after_it(db):
    labeler = LabelerFactory()
    draft = labeler_draft_save(labeler=labeler, criteria_text="draft")
    labeler_version_create(labeler=labeler, criteria_text="published meanwhile")
    published = labeler_version_publish(version=draft)
    assert published.number == 4
    assert labeler.current_version == published


def test_a_new_labeler_starts_with_a_published_first_version(db):
    labeler = labeler_create(
        name="Spam", slug="spam", kind="remote", remote_labeler_id="lab_1", model="cope-b-12b"
    )
    version = labeler.current_version
    assert (version.number, version.remote_version_id, version.state) == (1, "latest", "published")
    assert "deprecated" in model_warning(version.model)


def test_the_relabel_command_refuses_a_draft(db):
    labeler = LabelerFactory()
    labeler_draft_save(labeler=labeler, criteria_text="two")
    with pytest.raises(CommandError, match="draft"):
        call_command("relabel", labeler.slug, "--labeler-version", "2")


def test_adding_a_version_in_the_admin_saves_a_draft_and_its_action_publishes_it(client):
    admin_user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    labeler = LabelerFactory()
    response = client.post(
        "/admin/labelers/labelerversion/add/",
        {"labeler": labeler.pk, "criteria_text": "Label spam", "remote_version_id": "latest"},
    )
    assert response.status_code == 302
    draft = labeler.draft_version
    assert draft is not None and labeler.current_version.number == 1
    # The action first shows the text it would publish, and publishes what it showed.
    shown = client.post(
        "/admin/labelers/labelerversion/",
        {"action": "publish", "_selected_action": [draft.pk]},
    ).content.decode()
    assert "Label spam" in shown and labeler.current_version.number == 1
    seen = html.unescape(re.search(rf'name="seen_{draft.pk}" value="([^"]*)"', shown).group(1))
    client.post(
        "/admin/labelers/labelerversion/",
        {
            "action": "publish",
            "_selected_action": [draft.pk],
            "confirmed": "1",
            f"seen_{draft.pk}": seen,
        },
    )
    assert labeler.current_version == draft and labeler.draft_version is None


def labeler_form(client, labeler, **changes):
    """The admin's change form of `labeler` as its page shows it, with `changes` typed in."""
    page = client.get(f"/admin/labelers/labeler/{labeler.pk}/change/").content.decode()
    shown = re.search(r'name="seen" value="([^"]*)"', page)
    return {
        "name": labeler.name,
        "slug": labeler.slug,
        "kind": labeler.kind,
        "active": "on",
        "min_confidence": "",
        "audit_share": "0",
        "seen": html.unescape(shown.group(1)) if shown else "",
        "versions-TOTAL_FORMS": "0",
        "versions-INITIAL_FORMS": "0",
        **changes,
    }


def test_the_admins_labeler_form_refuses_a_save_from_a_page_shown_before_another_change(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    labeler = LabelerFactory()
    stale = labeler_form(client, labeler, audit_share="0.5")
    # Another admin raises the threshold on the labeler's page meanwhile.
    criteria.labeler_review_policy_set(
        labeler=labeler, min_confidence=0.9, auto_approve_confidence=None, audit_share=0.0
    )
    url = f"/admin/labelers/labeler/{labeler.pk}/change/"
    response = client.post(url, stale)
    page = html.unescape(response.content.decode())
    assert response.status_code == 200
    assert (
        "The labeler was changed by someone else since your page was shown (the minimum "
        "confidence was none on your page and is 0.9 now). Nothing was saved." in page
    )
    labeler.refresh_from_db()
    assert (labeler.min_confidence, labeler.audit_share) == (0.9, 0.0)
    # From a page showing the change, the save goes through.
    fresh = labeler_form(client, labeler, min_confidence="0.9", audit_share="0.5")
    assert client.post(url, fresh).status_code == 302
    labeler.refresh_from_db()
    assert (labeler.min_confidence, labeler.audit_share) == (0.9, 0.5)


def test_the_admins_labeler_form_refuses_a_save_that_does_not_say_what_it_showed(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    labeler = LabelerFactory()
    form = {**labeler_form(client, labeler, audit_share="0.5"), "seen": ""}
    response = client.post(f"/admin/labelers/labeler/{labeler.pk}/change/", form)
    assert "The form did not say what it showed." in response.content.decode()
    labeler.refresh_from_db()
    assert labeler.audit_share == 0.0


def test_the_admins_publish_action_refuses_a_draft_edited_after_its_confirmation(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    labeler = LabelerFactory()
    draft = criteria.labeler_draft_save(labeler=labeler, criteria_text="Label hate")
    shown = client.post(
        "/admin/labelers/labelerversion/",
        {"action": "publish", "_selected_action": [draft.pk]},
    ).content.decode()
    seen = html.unescape(re.search(rf'name="seen_{draft.pk}" value="([^"]*)"', shown).group(1))
    criteria.labeler_draft_save(labeler=labeler, criteria_text="Label everything but hate")
    response = client.post(
        "/admin/labelers/labelerversion/",
        {
            "action": "publish",
            "_selected_action": [draft.pk],
            "confirmed": "1",
            f"seen_{draft.pk}": seen,
        },
        follow=True,
    )
    assert "was not published: it was edited after the confirmation" in response.content.decode()
    assert labeler.current_version.number == 1
