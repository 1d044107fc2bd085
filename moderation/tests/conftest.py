import pytest
from django.contrib.auth.models import Group

from moderation.services.routing_rules import queue_save
from moderation.tests.factories import UserFactory


@pytest.fixture
def reviewer(client):
    """A reviewer, logged in on `client` (a file whose reviewer only decides through
    services, not pages, defines its own)."""
    user = UserFactory()
    client.force_login(user)
    return user


@pytest.fixture
def media_root(settings, tmp_path):
    """Media files of the test's own, in its tmp_path (files that purge or erase them)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


# Team queues (test_routing.py, test_queue_policies.py): an admin, and a team's queue.
@pytest.fixture
def admin():
    return UserFactory(is_staff=True, reviewer=False)


@pytest.fixture
def team():
    return Group.objects.create(name="Graphic team")


@pytest.fixture
def graphic(admin, team):
    return queue_save(actor=admin, queue=None, name="Graphic", team_id=team.pk)
