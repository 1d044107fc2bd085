"""The OpenAPI document of the webhook and the items API, served as written in openapi.yaml."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

OPENAPI_PATH = Path(settings.BASE_DIR) / "openapi.yaml"


@cache
def _document() -> bytes:
    # Read on first request, not at import: a missing file must not break every other URL.
    return OPENAPI_PATH.read_bytes()


@require_GET
def openapi_document(request: HttpRequest) -> HttpResponse:
    return HttpResponse(_document(), content_type="application/yaml")
