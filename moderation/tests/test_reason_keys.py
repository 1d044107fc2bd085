"""Each decision reason keeps its digit: new reasons take a digit never used by their action,
archiving a reason moves no other, reasons are archived rather than deleted, and the item
page offers each reason under its own digit."""

import pytest
from django.db import IntegrityError

from moderation.models import DecisionReason
from moderation.services.decisions import decision_reason_save
from moderation.tests.factories import ItemFactory, UserFactory

pytestmark = pytest.mark.django_db


def keys(action: str) -> dict[str, int | None]:
    reasons = DecisionReason.objects.filter(action=action, active=True)
    return dict(reasons.values_list("name", "key"))


def test_a_new_reason_takes_the_next_free_key_and_moves_no_other(db):
    before = keys("remove")
    assert before["Hate or harassment"] == 1 and before["Violence or threat"] == 2
    # The case: a reason added with the default order (0), sorted first by name.
    added = decision_reason_save(
        reason=DecisionReason(action="remove", name="Animal cruelty", order=0)
    )
    assert added.key == 8
    assert keys("remove") == {**before, "Animal cruelty": 8}


def test_archiving_a_reason_renumbers_nothing_and_its_digit_is_not_handed_on(db):
    hate = DecisionReason.objects.get(action="remove", name="Hate or harassment")
    hate.active = False
    decision_reason_save(reason=hate)
    assert keys("remove")["Violence or threat"] == 2
    # A new reason does not take the archived reason's digit by itself: "1 r" was learnt.
    added = decision_reason_save(reason=DecisionReason(action="remove", name="Scam"))
    assert added.key == 8


def test_two_active_reasons_of_an_action_never_share_a_key(db):
    with pytest.raises(IntegrityError):
        DecisionReason.objects.create(action="remove", name="Doubled", key=1)


def test_reasons_are_archived_not_deleted_in_the_admin(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    reason = DecisionReason.objects.get(action="remove", key=1)
    response = client.post(f"/admin/moderation/decisionreason/{reason.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert DecisionReason.objects.filter(pk=reason.pk).exists()


def test_the_admin_shows_and_edits_the_key_and_a_clash_is_refused(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    reason = DecisionReason.objects.get(action="remove", name="Spam or scam")
    page = client.get("/admin/moderation/decisionreason/").content.decode()
    assert 'name="form-0-key"' in page
    response = client.post(
        f"/admin/moderation/decisionreason/{reason.pk}/change/",
        {"action": "remove", "name": "Spam or scam", "key": "1", "active": "on"},
    )
    assert response.status_code == 200  # the form again, with the error
    assert "Another active reason of this action has that key" in response.content.decode()
    reason.refresh_from_db()
    assert reason.key == 4


def test_the_item_page_offers_each_reason_under_its_own_digit(client):
    client.force_login(UserFactory())
    hate = DecisionReason.objects.get(action="remove", name="Hate or harassment")
    hate.active = False
    decision_reason_save(reason=hate)
    violence = DecisionReason.objects.get(action="remove", name="Violence or threat")
    page = client.get(f"/items/{ItemFactory().pk}/").content.decode()
    assert f'value="{violence.pk}" data-digit="2"' in page
    assert "to approve it is optional" in page
