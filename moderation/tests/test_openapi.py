"""openapi.yaml is served as written, is valid OpenAPI 3.1, and tells the truth.

The truth part sends every documented request example through the real webhook (with the fake
labeling API), reads each item back through the real API, and checks the actual answers, and
one real answer for every documented error status, against the documented schemas.
"""

import copy
import json
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import pytest
import yaml
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from labelers.models import Label
from moderation.callbacks import deliveries
from moderation.models import Decision, Item
from moderation.services.decisions import decision_record
from moderation.tests.factories import SourceFactory, UserFactory, decided_flagged_item, reason_id
from testkit.signing import signed_headers

pytestmark = pytest.mark.django_db

SPEC_PATH = Path(__file__).resolve().parents[2] / "openapi.yaml"
SPEC_BYTES = SPEC_PATH.read_bytes()
SPEC = yaml.safe_load(SPEC_BYTES)
SPEC_URI = "urn:modqueue:openapi"
REGISTRY = Registry().with_resource(
    SPEC_URI, Resource.from_contents(SPEC, default_specification=DRAFT202012)
)

WEBHOOK = "/webhooks/{slug}/"
ITEM = "/api/items/{id}/"
ITEMS = "/api/items/"

FORMATS = FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value) -> bool:
    # RFC 3339 as Django writes it (isoformat), always with an offset.
    if not isinstance(value, str):
        return True
    return datetime.fromisoformat(value).tzinfo is not None


def _pointer(*parts: str) -> str:
    escaped = (str(p).replace("~", "~0").replace("/", "~1") for p in parts)
    return "/" + "/".join(escaped)


def _resolve(node: dict) -> dict:
    """Follow a local $ref (to components/responses, etc.) to the object it names."""
    while "$ref" in node:
        node = REGISTRY.resolver(base_uri=SPEC_URI).lookup(node["$ref"]).contents
    return node


def validator_at(pointer: str) -> Draft202012Validator:
    """A validator for the schema at this JSON pointer into the document; $refs resolve."""
    return Draft202012Validator(
        {"$ref": f"{SPEC_URI}#{quote(pointer, safe='/~')}"},
        registry=REGISTRY,
        format_checker=FORMATS,
    )


def errors(validator: Draft202012Validator, instance) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(instance)
    ]


def response_validator(path: str, method: str, status: int) -> Draft202012Validator:
    responses = SPEC["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} does not document {status}"
    ref = responses[str(status)].get("$ref")
    if ref:  # a shared response in components/responses
        pointer = ref.removeprefix("#")
    else:
        pointer = _pointer("paths", path, method, "responses", str(status))
    return validator_at(pointer + _pointer("content", "application/json", "schema"))


def request_examples() -> dict[str, dict]:
    media = SPEC["paths"][WEBHOOK]["post"]["requestBody"]["content"]["application/json"]
    return {name: example["value"] for name, example in media["examples"].items()}


def media_types_with_examples():
    """(pointer to the media type object, media type object) for every documented body."""
    for path, item in SPEC["paths"].items():
        for method, op in item.items():
            body = op.get("requestBody")
            if body:
                for mime in body["content"]:
                    yield _pointer("paths", path, method, "requestBody", "content", mime)
            for status, response in op["responses"].items():
                if "$ref" in response:
                    base = response["$ref"].removeprefix("#")
                else:
                    base = _pointer("paths", path, method, "responses", status)
                for mime in _resolve(response).get("content", {}):
                    yield base + _pointer("content", mime)


def _at(pointer: str):
    return REGISTRY.resolver(base_uri=SPEC_URI).lookup(f"#{quote(pointer, safe='/~')}").contents


# --- the document itself ----------------------------------------------------------------------


def test_the_served_document_is_the_file(client):
    response = client.get("/api/openapi.yaml")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/yaml"
    assert response.content == SPEC_BYTES


def test_the_document_is_valid_openapi_3_1():
    spec_validator = pytest.importorskip("openapi_spec_validator")

    assert SPEC["openapi"].startswith("3.1.")
    spec_validator.validate(copy.deepcopy(SPEC), cls=spec_validator.OpenAPIV31SpecValidator)


def test_every_schema_is_a_valid_json_schema_and_every_ref_resolves():
    for schema in SPEC["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)

    def refs(node):
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    found = list(refs(SPEC))
    assert found
    for ref in found:
        assert ref.startswith("#/"), ref
        _resolve({"$ref": ref})  # raises if it names nothing


def test_the_documented_statuses_are_the_ones_in_the_code():
    item_statuses = [choice for choice, _ in Item.Status.choices]
    assert SPEC["components"]["schemas"]["ItemStatus"]["enum"] == item_statuses
    # Every action but an escalation, which stays inside the team (Decision.for_products).
    sent = [choice for choice, _ in Decision.Action.choices if choice != "escalate"]
    actions = SPEC["components"]["schemas"]["Decision"]["properties"]["action"]["enum"]
    assert actions == sent
    event_actions = SPEC["components"]["schemas"]["DecisionEvent"]["properties"]["action"]
    assert event_actions["enum"] == sent
    label_statuses = SPEC["components"]["schemas"]["Label"]["properties"]["status"]["enum"]
    assert label_statuses == [choice for choice, _ in Label.Status.choices]


def test_the_webhook_headers_are_required_and_the_items_api_needs_a_bearer_token():
    op = SPEC["paths"][WEBHOOK]["post"]
    headers = {p["name"]: p for p in op["parameters"] if p["in"] == "header"}
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert all(p["required"] for p in headers.values())
    assert op["security"] == []
    assert SPEC["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path in (ITEM, ITEMS):
        assert SPEC["paths"][path]["get"]["security"] == [{"bearer": []}]


def test_every_documented_example_matches_its_schema():
    checked = 0
    for pointer in media_types_with_examples():
        media = _at(pointer)
        examples = media.get("examples", {})
        assert examples, f"no examples at {pointer}"
        validator = validator_at(pointer + "/schema")
        for name, example in examples.items():
            assert errors(validator, example["value"]) == [], f"{pointer} example {name}"
            checked += 1
    for path, item in SPEC["paths"].items():
        for method, op in item.items():
            for param in op.get("parameters", []):
                assert Draft202012Validator(param["schema"]).is_valid(param["example"]), (
                    f"{method} {path} {param['name']}"
                )
    assert checked >= 15


def test_the_schemas_refuse_what_the_webhook_refuses():
    body = validator_at("/components/schemas/WebhookBody")
    assert not body.is_valid({"content_text": "no id"})
    assert not body.is_valid({"external_id": "x" * 256, "content_text": "too long an id"})
    assert not body.is_valid({"external_id": "   ", "content_text": "blank id"})
    assert not body.is_valid({"external_id": "a", "content_image": "https://example.com/a.png"})
    assert not body.is_valid({"external_id": "a", "metadata": ["not", "an", "object"]})
    assert not body.is_valid(["not an object"])
    assert body.is_valid({"external_id": "a", "content_text": "x", "unknown": {"any": 1}})
    item = validator_at("/components/schemas/Item")
    example = SPEC["components"]["responses"]["Item"]["content"]["application/json"]
    decided = example["examples"]["decided"]["value"]
    assert not item.is_valid({**decided, "received_at": "yesterday"})
    assert not item.is_valid({**decided, "labels": [{**decided["labels"][0], "label": 1}]})
    assert not item.is_valid({**decided, "extra": True})


# --- the document tells the truth ---------------------------------------------------------------


def _get(client, url: str, token: str | None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get(url, headers=headers)


@pytest.mark.parametrize("name", sorted(request_examples()))
def test_each_request_example_really_works_as_documented(
    client, fake_api, post_webhook, source, name
):
    payload = request_examples()[name]
    response = post_webhook(source, payload)
    assert response.status_code == 202, response.content
    assert errors(response_validator(WEBHOOK, "post", 202), response.json()) == []
    item_id = response.json()["id"]

    again = post_webhook(source, payload)
    assert again.status_code == 200
    assert errors(response_validator(WEBHOOK, "post", 200), again.json()) == []
    assert again.json()["id"] == item_id

    by_id = _get(client, f"/api/items/{item_id}/", source._token)
    assert by_id.status_code == 200
    assert errors(response_validator(ITEM, "get", 200), by_id.json()) == []
    item = by_id.json()
    assert item["external_id"] == payload["external_id"]
    assert item["labels"] and all(label["status"] == "done" for label in item["labels"])
    assert item["decision"] is None and item["decisions"] == []

    by_external_id = client.get(
        ITEMS,
        {"external_id": payload["external_id"]},
        headers={"Authorization": f"Bearer {source._token}"},
    )
    assert by_external_id.status_code == 200
    assert errors(response_validator(ITEMS, "get", 200), by_external_id.json()) == []
    assert by_external_id.json() == item


def test_a_decided_item_really_matches_the_item_schema(client, fake_api, post_webhook, source):
    payload = {"external_id": "p-hate", "content_text": "I hate you conf=0.91"}
    item_id = post_webhook(source, payload).json()["id"]
    reviewer = UserFactory()
    item = Item.objects.get(pk=item_id)
    Decision.objects.create(item=item, reviewer=reviewer, action="approve", reason="")
    Decision.objects.create(item=item, reviewer=reviewer, action="remove", reason="")
    Item.objects.filter(pk=item_id).update(status="decided")

    response = _get(client, f"/api/items/{item_id}/", source._token)
    assert response.status_code == 200
    assert errors(response_validator(ITEM, "get", 200), response.json()) == []
    body = response.json()
    assert body["decision"]["action"] == "remove"
    assert [d["action"] for d in body["decisions"]] == ["approve", "remove"]
    assert body["under_review"] is False
    assert body["violation_score"] == pytest.approx(0.91)
    assert body["labels"][0]["label"] == "1"


def test_an_escalated_item_is_under_review_with_no_decision_and_no_escalation_shown(
    client, fake_api, post_webhook, source
):
    payload = {"external_id": "p-threat", "content_text": "I hate you conf=0.91"}
    item_id = post_webhook(source, payload).json()["id"]
    decision_record(
        item=Item.objects.get(pk=item_id),
        reviewer=UserFactory(),
        action="escalate",
        reason_id=reason_id("escalate"),
        note="looks like a credible threat",
    )

    response = _get(client, f"/api/items/{item_id}/", source._token)
    assert errors(response_validator(ITEM, "get", 200), response.json()) == []
    body = response.json()
    assert (body["status"], body["under_review"]) == ("escalated", True)
    assert body["decision"] is None and body["decisions"] == []
    assert "credible" not in response.content.decode().lower()


def _signed(source, body: bytes) -> dict:
    return signed_headers(source._secret, body)


def _missing_header(source, body):
    headers = _signed(source, body)
    del headers["webhook-signature"]
    return headers


def _bad_signature(source, body):
    return {**_signed(source, body), "webhook-signature": "v1,bm90IHRoZSBzaWduYXR1cmU="}


GOOD = {"external_id": "e1", "content_text": "hello"}
WEBHOOK_ERRORS = {
    400: dict(raw=b'{"external_id": "e1", ', headers=None),
    401: dict(payload=GOOD, headers=_bad_signature),
    403: dict(payload=GOOD, deactivate=True),
    404: dict(payload=GOOD, slug="no-such-source"),
    413: dict(payload={**GOOD, "metadata": {"blob": "x" * 20_000}}),
    415: dict(payload={**GOOD, "content_image": "data:image/bmp;base64,Qk0AAAA="}),
    422: dict(payload={"content_text": "no external id"}),
}


def test_every_documented_webhook_error_status_is_tested_here():
    documented = {int(s) for s in SPEC["paths"][WEBHOOK]["post"]["responses"] if int(s) >= 400}
    assert documented == set(WEBHOOK_ERRORS)


@pytest.mark.parametrize("status", sorted(WEBHOOK_ERRORS))
def test_each_documented_webhook_error_is_real_and_matches_the_error_schema(
    post_webhook, source, status
):
    case = WEBHOOK_ERRORS[status]
    if case.get("deactivate"):
        source.active = False
        source.save()
    body = case["raw"] if "raw" in case else json.dumps(case["payload"]).encode()
    headers = case["headers"](source, body) if case.get("headers") else None
    target = SimpleNamespace(slug=case.get("slug", source.slug), _secret=source._secret)
    response = post_webhook(target, None, raw=body, headers=headers)
    assert response.status_code == status, response.content
    assert errors(response_validator(WEBHOOK, "post", status), response.json()) == []
    assert Item.objects.count() == 0


def test_a_missing_header_is_the_documented_400(post_webhook, source):
    body = json.dumps(GOOD).encode()
    response = post_webhook(source, None, raw=body, headers=_missing_header(source, body))
    assert response.status_code == 400
    assert errors(response_validator(WEBHOOK, "post", 400), response.json()) == []


def test_the_api_errors_are_real_and_match_the_error_schema(client, fake_api, post_webhook, source):
    item_id = post_webhook(source, GOOD).json()["id"]
    cases = [
        (ITEM, "get", f"/api/items/{item_id}/", None, 401),
        (ITEM, "get", f"/api/items/{item_id}/", "wrong-token", 401),
        (ITEM, "get", f"/api/items/{item_id + 1000}/", source._token, 404),
        (ITEMS, "get", "/api/items/?external_id=e1", None, 401),
        (ITEMS, "get", "/api/items/?external_id=nope", source._token, 404),
        (ITEMS, "get", "/api/items/", source._token, 400),
    ]
    for path, method, url, token, status in cases:
        response = _get(client, url, token)
        assert response.status_code == status, url
        assert errors(response_validator(path, method, status), response.json()) == [], url
        if status == 401:
            assert response["WWW-Authenticate"] == "Bearer"


def test_another_sources_item_is_a_404_not_a_leak(client, fake_api, post_webhook, source):
    other = SourceFactory()
    item_id = post_webhook(other, GOOD).json()["id"]
    response = _get(client, f"/api/items/{item_id}/", source._token)
    assert response.status_code == 404
    assert errors(response_validator(ITEM, "get", 404), response.json()) == []


# --- decisions back to the product --------------------------------------------------------------

DECISIONS = "/api/decisions/"


def test_the_decisions_feed_really_matches_its_schema(client, source):
    source.callback_include_reviewer = True
    source.save()
    reviewer = UserFactory()
    for n in range(3):
        decided_flagged_item(source, reviewer, n)
    first = _get(client, f"{DECISIONS}?limit=2", source._token)
    assert errors(response_validator(DECISIONS, "get", 200), first.json()) == []
    assert first.json()["has_more"] is True
    rest = _get(client, f"{DECISIONS}?since={first.json()['next']}", source._token)
    assert errors(response_validator(DECISIONS, "get", 200), rest.json()) == []
    assert len(rest.json()["decisions"]) == 1 and rest.json()["has_more"] is False


def test_the_decisions_feed_errors_are_real_and_match_the_error_schema(client, source):
    for url, token, status in (
        (DECISIONS, None, 401),
        (f"{DECISIONS}?since=x", source._token, 400),
        (f"{DECISIONS}?limit=5000", source._token, 400),
    ):
        response = _get(client, url, token)
        assert response.status_code == status, url
        assert errors(response_validator(DECISIONS, "get", status), response.json()) == [], url


def test_a_real_callback_body_matches_the_documented_webhook(source):
    reviewer = UserFactory()
    decision = decided_flagged_item(source, reviewer, 1)
    body = json.loads(deliveries.callback_body(decision, source))
    pointer = "/webhooks/decision/post/requestBody/content/application~1json"
    validator = validator_at(pointer + "/schema")
    assert errors(validator, body) == []
    for example in _at(pointer)["examples"].values():
        assert errors(validator, example["value"]) == []
    source.callback_include_reviewer = True
    assert errors(validator, json.loads(deliveries.callback_body(decision, source))) == []
