"""The product's URLs plus /baseline/: the least a Django view can do to accept one item.

The baseline parses the JSON body and inserts one row with raw SQL into `bench_baseline`
(created by bench/intake.py). It goes through the same middleware stack as the webhook, so the
difference between the two is what the product's intake itself costs.
"""

import contextlib
import json

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST


@csrf_exempt
@require_POST
def baseline_view(request: HttpRequest) -> JsonResponse:
    try:
        data = json.loads(request.body)
        external_id = data["external_id"]
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"error": "bad body"}, status=400)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO bench_baseline (external_id, body) VALUES (%s, %s::jsonb) RETURNING id",
            [external_id, json.dumps(data)],
        )
        (row_id,) = cursor.fetchone()
    return JsonResponse({"id": row_id, "status": "stored"}, status=202)


@csrf_exempt
@require_POST
def webhook_detecting_view(request: HttpRequest, slug: str):
    """The product's webhook, then the language detection its request used to do before the
    detection moved to the dispatch (bench/intake.py --language: the cost it no longer pays)."""
    from moderation.language import detect_language
    from moderation.views.api import webhook

    body = request.body  # read first: the webhook reads the stream
    response = webhook(request, slug=slug)
    with contextlib.suppress(ValueError, AttributeError):
        detect_language(json.loads(body).get("content_text") or "")
    return response


urlpatterns = [
    path("baseline/", baseline_view, name="bench_baseline"),
    path("bench-language/<slug:slug>/", webhook_detecting_view, name="bench_language"),
    path("", include("config.urls")),
]
