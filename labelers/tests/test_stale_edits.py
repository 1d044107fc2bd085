"""Admins change only what their page showed: "Publish" publishes exactly the draft text the
admin saw, and a draft save, a threshold or band change, or applying advice made on a page
that another admin's change has overtaken is refused, saying what changed."""

import html
import json
import re

import pytest
from django.urls import reverse

from labelers import criteria
from labelers.models import Reevaluation
from moderation.tests.factories import LabelerFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_a(client):
    user = UserFactory(is_staff=True, username="admin-a")
    client.force_login(user)
    return user


def seen_in(page: str, form_id: str) -> str:
    """The snapshot a form of the page sends back (its hidden "seen" field)."""
    form = re.search(rf'<form [^>]*id="{form_id}".*?</form>', page, re.S)
    assert form, form_id
    found = re.search(r'name="seen" value="([^"]*)"', form.group(0))
    assert found, f"{form_id} sends no snapshot"
    return html.unescape(found.group(1))


def labeler_page(client, labeler) -> str:
    return client.get(reverse("manage_labeler", args=[labeler.pk])).content.decode()


# --- The services ---------------------------------------------------------------------------


def test_publishing_a_draft_edited_since_the_page_was_shown_is_refused(db):
    labeler = LabelerFactory()
    draft = criteria.labeler_draft_save(labeler=labeler, criteria_text="Label hate")
    seen = criteria.draft_snapshot(draft)
    criteria.labeler_draft_save(labeler=labeler, criteria_text="Label everything but hate")
    with pytest.raises(criteria.StaleEdit, match="criteria_text"):
        criteria.labeler_version_publish(version=draft, seen=seen)
    assert labeler.current_version.number == 1 and labeler.draft_version is not None
    # The text as it is now, once seen, publishes.
    draft.refresh_from_db()
    criteria.labeler_version_publish(version=draft, seen=criteria.draft_snapshot(draft))
    assert labeler.current_version.criteria_text == "Label everything but hate"


def test_a_draft_save_never_overwrites_an_edit_it_did_not_show(db):
    labeler = LabelerFactory()
    seen = criteria.draft_snapshot(None)  # the page showed no draft
    criteria.labeler_draft_save(labeler=labeler, criteria_text="B's draft")
    with pytest.raises(criteria.StaleEdit):
        criteria.labeler_draft_save(labeler=labeler, criteria_text="A's draft", seen=seen)
    assert labeler.draft_version.criteria_text == "B's draft"


def test_a_threshold_change_made_on_an_overtaken_page_is_refused(db):
    labeler = LabelerFactory()
    seen = criteria.review_policy_snapshot(labeler)
    criteria.labeler_min_confidence_set(labeler=labeler, min_confidence=0.8)
    with pytest.raises(criteria.StaleEdit, match="min_confidence"):
        criteria.labeler_review_policy_set(
            labeler=labeler,
            min_confidence=None,
            auto_approve_confidence=0.9,
            audit_share=0.0,
            seen=seen,
        )
    labeler.refresh_from_db()
    assert (labeler.min_confidence, labeler.auto_approve_confidence) == (0.8, None)


def test_advice_for_a_version_no_longer_current_is_not_applied(db):
    labeler = LabelerFactory()
    seen = criteria.review_policy_snapshot(labeler)
    criteria.labeler_version_create(labeler=labeler, criteria_text="a new policy")
    with pytest.raises(criteria.StaleEdit, match="version"):
        criteria.labeler_min_confidence_set(labeler=labeler, min_confidence=0.9, seen=seen)
    labeler.refresh_from_db()
    assert labeler.min_confidence is None


# --- The pages --------------------------------------------------------------------------------


def test_a_stale_publish_publishes_nothing_and_shows_what_changed(client, admin_a):
    """Admin A's page shows the draft; admin B edits it (inverting the policy); A's
    "Publish" must not put B's text live."""
    labeler = LabelerFactory()
    criteria.labeler_draft_save(labeler=labeler, criteria_text="Label hate as 1")
    stale_seen = seen_in(labeler_page(client, labeler), "publish-form")
    draft = labeler.draft_version
    criteria.labeler_draft_save(
        labeler=labeler,
        criteria_text="Label everything except hate as 1",
        created_by=UserFactory(is_staff=True, username="admin-b"),
    )
    response = client.post(
        reverse("manage_labeler_publish", args=[labeler.pk]),
        {"version": draft.pk, "seen": stale_seen},
    )
    assert response.status_code == 409
    page = response.content.decode()
    assert "Nothing was published: the draft was edited by admin-b" in page
    assert '<span class="diff-remove">-Label hate as 1</span>' in page
    assert '<span class="diff-add">+Label everything except hate as 1</span>' in page
    assert labeler.current_version.number == 1
    # The page now offers to publish the text it shows.
    again = seen_in(page, "publish-form")
    client.post(
        reverse("manage_labeler_publish", args=[labeler.pk]), {"version": draft.pk, "seen": again}
    )
    assert labeler.current_version.criteria_text == "Label everything except hate as 1"


def test_a_publish_that_does_not_say_what_it_saw_is_refused(client, admin_a):
    labeler = LabelerFactory()
    draft = criteria.labeler_draft_save(labeler=labeler, criteria_text="Label spam")
    response = client.post(
        reverse("manage_labeler_publish", args=[labeler.pk]), {"version": draft.pk}, follow=True
    )
    assert "the form did not say what your page showed" in response.content.decode()
    assert labeler.current_version.number == 1


def test_a_stale_draft_save_keeps_the_admins_text_and_shows_the_other_edit(client, admin_a):
    labeler = LabelerFactory()
    stale_seen = seen_in(labeler_page(client, labeler), "draft-form")
    criteria.labeler_draft_save(labeler=labeler, criteria_text="B wrote this")
    response = client.post(
        reverse("manage_labeler_draft", args=[labeler.pk]),
        {"criteria_text": "A wrote this", "remote_version_id": "latest", "seen": stale_seen},
    )
    assert response.status_code == 409
    page = response.content.decode()
    assert "Your draft was not saved" in page and "+B wrote this" in page
    assert "A wrote this</textarea>" in page  # A's own text, still in the form
    assert labeler.draft_version.criteria_text == "B wrote this"


def test_a_stale_threshold_form_is_refused_naming_the_field(client, admin_a):
    labeler = LabelerFactory()
    stale_seen = seen_in(labeler_page(client, labeler), "policy-form")
    criteria.labeler_min_confidence_set(labeler=labeler, min_confidence=0.8)
    reevaluations = Reevaluation.objects.count()  # the other admin's change started one
    response = client.post(
        reverse("manage_labeler_policy", args=[labeler.pk]),
        {
            "min_confidence": "0.6",
            "auto_approve_confidence": "",
            "audit_share": "0",
            "seen": stale_seen,
        },
    )
    assert response.status_code == 409
    assert (
        "the minimum confidence was none on your page and is 0.8 now" in response.content.decode()
    )
    labeler.refresh_from_db()
    assert labeler.min_confidence == 0.8
    assert Reevaluation.objects.count() == reevaluations


def test_advice_applied_from_an_overtaken_page_is_refused(client, admin_a):
    labeler = LabelerFactory()
    stale_seen = json.dumps(criteria.review_policy_snapshot(labeler))
    criteria.labeler_min_confidence_set(labeler=labeler, min_confidence=0.7)
    reevaluations = Reevaluation.objects.count()  # the other admin's change started one
    response = client.post(
        reverse("manage_labeler_threshold", args=[labeler.pk]),
        {"min_confidence": "0.9", "seen": stale_seen},
        follow=True,
    )
    page = response.content.decode()
    assert "The advice was not applied" in page
    assert "the minimum confidence was none on your page and is 0.7 now" in page
    labeler.refresh_from_db()
    assert labeler.min_confidence == 0.7
    assert Reevaluation.objects.count() == reevaluations
