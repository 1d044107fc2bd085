"""The product's URLs plus /baseline/: the least a Django view can do to accept one item.

The baseline parses the JSON body and inserts one row with raw SQL into `bench_baseline`
(created by bench/intake.py). It goes through the same middleware stack as the webhook, so the
difference between the two is what the product's intake itself costs.
"""

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


urlpatterns = [
    path("baseline/", baseline_view, name="bench_baseline"),
    path("", include("config.urls")),
]
