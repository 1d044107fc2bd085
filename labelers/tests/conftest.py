import pytest

from moderation.tests.factories import UserFactory


@pytest.fixture
def staff(client):
    """A staff user, logged in on `client`."""
    user = UserFactory(is_staff=True)
    client.force_login(user)
    return user
