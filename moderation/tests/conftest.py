import pytest

from moderation.tests.factories import UserFactory


@pytest.fixture
def reviewer(client):
    """A reviewer, logged in on `client` (a file whose reviewer only decides through
    services, not pages, defines its own)."""
    user = UserFactory()
    client.force_login(user)
    return user
