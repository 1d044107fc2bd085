"""Media goes through Django's storage interface only, so MEDIA_STORAGE=s3 (django-storages)
needs nothing else from the code: checked here with another backend (in memory) and with the
S3 backend's configuration, without a network."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.files.storage import default_storage, storages
from django.core.files.storage.memory import InMemoryStorage

from moderation.models import Item
from moderation.tests.factories import UserFactory
from moderation.tests.media import png_bytes, png_data_url

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.django_db
def test_intake_labeling_and_the_item_page_use_only_the_configured_storage(
    client, fake_api, post_webhook, source, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path / "must-stay-empty"
    memory = {"BACKEND": "django.core.files.storage.InMemoryStorage"}
    settings.STORAGES = {**settings.STORAGES, "default": memory}
    assert isinstance(storages["default"], InMemoryStorage)
    response = post_webhook(
        source, {"external_id": "img", "content_text": "a picture", "content_image": png_data_url()}
    )
    assert response.status_code == 202, response.content
    item = Item.objects.get(pk=response.json()["id"])
    assert item.labels.get().status == "done"  # the worker read the image from the storage
    assert default_storage.exists(item.content_image.name)
    client.force_login(UserFactory())
    page = client.get(f"/items/{item.pk}/image/")
    assert page.status_code == 200
    assert b"".join(page.streaming_content) == png_bytes()
    assert not (tmp_path / "must-stay-empty").exists()


def test_media_storage_s3_configures_a_private_bucket_from_the_environment(tmp_path):
    env = {
        "PATH": os.environ["PATH"],
        "DATA_DIR": str(tmp_path),
        "MEDIA_STORAGE": "s3",
        "MEDIA_S3_BUCKET": "modqueue-media",
        "MEDIA_S3_ENDPOINT_URL": "http://minio.internal:9000",
        "MEDIA_S3_REGION": "eu-west-1",
        "MEDIA_S3_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "MEDIA_S3_SECRET_ACCESS_KEY": "not-a-real-secret",
    }
    code = (
        "import json, django; django.setup()\n"
        "from django.core.files.storage import default_storage as s\n"
        "s._setup(); w = s._wrapped\n"
        "print(json.dumps([type(w).__module__ + '.' + type(w).__name__, w.bucket_name,"
        " w.location, w.endpoint_url, w.region_name, w.default_acl, w.file_overwrite,"
        " all(callable(getattr(w, m)) for m in ('save', 'open', 'exists', 'delete', 'size'))]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == [
        "storages.backends.s3.S3Storage",
        "modqueue-media",
        "media",
        "http://minio.internal:9000",
        "eu-west-1",
        None,
        False,
        True,
    ]


def test_an_unknown_media_storage_is_refused_at_start(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        env={"PATH": os.environ["PATH"], "DATA_DIR": str(tmp_path), "MEDIA_STORAGE": "ftp"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "MEDIA_STORAGE must be local or s3" in result.stderr


def test_media_storage_s3_without_the_s3_extra_is_refused_at_start_saying_what_to_install(
    tmp_path,
):
    # boto3 is absent from the default install; here it is hidden (dev has the s3 extra).
    code = "import sys; sys.modules['boto3'] = None\nimport django; django.setup()\n"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={
            "PATH": os.environ["PATH"],
            "DATA_DIR": str(tmp_path),
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "MEDIA_STORAGE": "s3",
            "MEDIA_S3_BUCKET": "modqueue-media",
        },
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured: MEDIA_STORAGE=s3 needs boto3" in result.stderr
    assert "requirements/s3.txt" in result.stderr and "WITH_S3=true" in result.stderr
