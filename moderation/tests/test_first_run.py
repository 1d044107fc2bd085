"""First run: one command sets up an admin with both roles and a source, says where the
credentials are once; the demo seeds marked sample content through the real intake."""

import pytest
from django.core.management import CommandError, call_command

from moderation.models import Item, Source

pytestmark = pytest.mark.django_db


def test_first_run_writes_the_credentials_and_says_so_once(settings, tmp_path, capsys):
    settings.DATA_DIR = tmp_path
    call_command("firstrun")
    out = capsys.readouterr().out
    assert out.count("credentials written to") == 1
    credentials = (tmp_path / "first-run-credentials.txt").read_text()
    assert "admin password:" in credentials and "demo signing secret: whsec_" in credentials
    assert "whsec_" not in out  # secrets go to the file, never to the terminal


def test_the_first_admin_is_a_reviewer_and_a_senior(settings, tmp_path, django_user_model):
    settings.DATA_DIR = tmp_path
    call_command("firstrun")
    admin = django_user_model.objects.get(username="admin")
    assert set(admin.groups.values_list("name", flat=True)) == {"reviewer", "senior"}


def test_the_demo_seeds_marked_text_and_image_items_once(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    settings.MEDIA_ROOT = tmp_path / "media"
    with pytest.raises(CommandError):
        call_command("seed_demo")  # never outside demo mode
    settings.DEMO_MODE = True
    call_command("seed_demo")
    call_command("seed_demo")
    source = Source.objects.get(slug="demo-samples")
    items = Item.objects.filter(source=source)
    assert items.count() >= 30
    assert items.exclude(content_image="").count() >= 5
    assert all(item.metadata == {"demo": True} for item in items)
    credentials = (tmp_path / "first-run-credentials.txt").read_text()
    assert "demo senior user: senior" in credentials


def test_demo_pages_say_they_are_a_demo(settings, client, django_user_model):
    settings.DEMO_MODE = True
    assert 'id="demo-banner"' in client.get("/accounts/login/").content.decode()
