"""The admin shows float fields rounded (lib/admin_display.py): an item's violation score
read 0.30000000000000004 (issue 23)."""

import pytest

from labelers.models import Label
from moderation.tests.factories import ItemFactory, UserFactory

pytestmark = pytest.mark.django_db

FLOAT = 0.1 + 0.2  # 0.30000000000000004


def test_the_admin_shows_float_fields_rounded_in_lists_and_on_change_pages(client):
    item = ItemFactory(violation_score=FLOAT, queue_score=FLOAT)
    label = Label.objects.create(
        item=item,
        labeler_version=item.source.labelers.get().current_version,
        status=Label.Status.DONE,
        label="1",
        confidence=FLOAT,
        content_hash=item.content_hash,
    )
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    for url in (
        "/admin/moderation/item/",
        f"/admin/moderation/item/{item.pk}/change/",
        "/admin/labelers/label/",
        f"/admin/labelers/label/{label.pk}/change/",
    ):
        response = client.get(url)
        html = response.content.decode()
        assert response.status_code == 200, url
        assert "0.30000000000000004" not in html, url
        assert "0.300" in html, url
