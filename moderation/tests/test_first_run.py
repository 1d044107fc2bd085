"""First run: one command sets up an admin with both roles and a source, says where the
credentials are once; the demo seeds marked sample content through the real intake."""

import json
import re
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from labelers.criteria import labeler_default
from labelers.quality.loaders import labeler_report
from moderation.models import Item, Source
from testkit.signing import signed_headers

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
    source = Source.objects.get(slug="demo")  # the source firstrun makes, with its token
    items = Item.objects.filter(source=source)
    assert items.count() >= 30
    assert items.exclude(content_image="").count() >= 5
    assert all(item.metadata == {"demo": True} for item in items)
    credentials = (tmp_path / "first-run-credentials.txt").read_text()
    assert "demo senior user: senior" in credentials


def test_demo_pages_say_they_are_a_demo(settings, client, django_user_model):
    settings.DEMO_MODE = True
    assert 'id="demo-banner"' in client.get("/accounts/login/").content.decode()


def _demo(settings, tmp_path) -> dict[str, str]:
    """`dev.py run --demo`'s setup: firstrun, then seed_demo; the credentials file read."""
    settings.DATA_DIR = tmp_path
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.DEMO_MODE = True
    call_command("firstrun")
    call_command("seed_demo")
    lines = (tmp_path / "first-run-credentials.txt").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if ": " in line)


def test_the_demo_token_sees_the_demo_items(settings, tmp_path, client):
    credentials = _demo(settings, tmp_path)
    response = client.get(
        "/api/items/",
        {"external_id": "demo-0"},
        headers={"Authorization": f"Bearer {credentials['demo API token']}"},
    )
    assert response.status_code == 200, response.content
    assert response.json()["external_id"] == "demo-0"


def test_the_readmes_webhook_example_posts_to_a_source_the_demo_has(settings, tmp_path, client):
    credentials = _demo(settings, tmp_path)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    example = readme.split("## Sources and webhooks")[1].split("```python")[1].split("```")[0]
    [slug] = re.findall(r'requests\.post\("http://127\.0\.0\.1:8000/webhooks/([^/]+)/"', example)
    assert f"/webhooks/{slug}/" == credentials["demo source"]
    body = json.dumps({"external_id": "post-123", "content_text": "the user's text"})
    response = client.post(
        f"/webhooks/{slug}/",
        data=body,
        content_type="application/json",
        headers=signed_headers(credentials["demo signing secret"], body.encode()),
    )
    assert response.status_code == 202, response.content


def test_the_demo_as_shipped_has_threshold_advice(settings, tmp_path):
    _demo(settings, tmp_path)
    [report, *_] = labeler_report(labeler_default())
    assert report.advice is not None and report.advice.decided >= 20
    # The advice has something to say: the earlier decisions disagree with flagging every "1".
    assert report.advice.advised.min_confidence is not None
