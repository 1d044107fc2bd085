"""The admins' labeler pages under /manage/: staff only, draft and publish, the diff, the
relabel button, the quality page, applying threshold advice, the JSONL export."""

import json
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from labelers import criteria
from labelers.criteria import labeler_draft_save, labeler_version_create
from labelers.models import Label, Labeler, LabelerVersion, Reevaluation, RelabelRun
from labelers.routing import source_routing
from moderation.models import Item
from moderation.services.decisions import decision_record
from moderation.tests.factories import ItemFactory, LabelerFactory, UserFactory, reason_id

pytestmark = pytest.mark.django_db


def page_urls(labeler):
    return [
        reverse("manage_labelers"),
        reverse("manage_labeler_new"),
        reverse("manage_labeler", args=[labeler.pk]),
        reverse("manage_labeler_quality", args=[labeler.pk]),
        reverse("manage_relabel_runs"),
        reverse("manage_export_decisions"),
    ]


def post_urls(labeler):
    return [
        reverse("manage_labeler_new"),
        reverse("manage_labeler_draft", args=[labeler.pk]),
        reverse("manage_labeler_publish", args=[labeler.pk]),
        reverse("manage_labeler_relabel", args=[labeler.pk]),
        reverse("manage_labeler_threshold", args=[labeler.pk]),
    ]


def test_every_manage_page_sends_anonymous_visitors_to_the_login(client):
    labeler = LabelerFactory()
    for url in page_urls(labeler) + post_urls(labeler):
        response = client.get(url) if url in page_urls(labeler) else client.post(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url


def test_every_manage_page_is_refused_to_reviewers_who_are_not_staff(client):
    labeler = LabelerFactory()
    client.force_login(UserFactory())
    for url in page_urls(labeler):
        assert client.get(url).status_code == 403, url
    for url in post_urls(labeler):
        assert client.post(url, {"min_confidence": "0.9", "version": "1"}).status_code == 403
    labeler.refresh_from_db()
    assert labeler.min_confidence is None and not labeler.versions.filter(number=2).exists()


def test_every_manage_page_renders_for_staff_without_inline_script_or_style(client, staff):
    labeler = LabelerFactory()
    labeler_draft_save(labeler=labeler, criteria_text="draft text")
    for url in page_urls(labeler)[:-1]:
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert "style=" not in html and "<style" not in html, url
        assert re.findall(r"<script(?![^>]*\bsrc=)", html) == [], url


def test_staff_create_a_remote_labeler_and_are_warned_of_a_deprecated_model(client, staff):
    response = client.post(
        reverse("manage_labeler_new"),
        {
            "name": "Spam",
            "slug": "spam",
            "kind": "remote",
            "remote_labeler_id": "lab_123",
            "remote_version_id": "",
            "model": "cope-b-12b",
        },
        follow=True,
    )
    labeler = Labeler.objects.get(slug="spam")
    version = labeler.current_version
    assert (version.remote_labeler_id, version.remote_version_id) == ("lab_123", "latest")
    assert "cope-b-12b is deprecated" in response.content.decode()


def test_the_new_labeler_form_offers_the_deprecation_with_the_model(client, staff):
    html = client.get(reverse("manage_labeler_new")).content.decode()
    assert "cope-b-12b (deprecated since 2026-07-01" in html


def test_a_labeler_needs_criteria_or_a_remote_id_not_both(client, staff):
    response = client.post(
        reverse("manage_labeler_new"),
        {
            "name": "X",
            "slug": "x",
            "kind": "criteria",
            "criteria_text": "a",
            "remote_labeler_id": "b",
        },
    )
    assert response.status_code == 200 and not Labeler.objects.filter(slug="x").exists()


def test_staff_save_a_draft_and_publish_it_which_switches_routing(client, staff, source):
    labeler = source.labelers.get()
    client.post(
        reverse("manage_labeler_draft", args=[labeler.pk]),
        {
            "criteria_text": "Label spam",
            "remote_version_id": "latest",
            "model": "",
            "seen": json.dumps(criteria.draft_snapshot(None)),
        },
    )
    draft = labeler.draft_version
    assert draft is not None and draft.criteria_text == "Label spam"
    assert source_routing(source.pk)[0].version_id == labeler.current_version.pk != draft.pk
    response = client.post(
        reverse("manage_labeler_publish", args=[labeler.pk]),
        {"version": draft.pk, "seen": json.dumps(criteria.draft_snapshot(draft))},
        follow=True,
    )
    assert "Nothing was relabeled" in response.content.decode()
    assert source_routing(source.pk)[0].version_id == draft.pk
    assert not RelabelRun.objects.exists()


def test_the_diff_between_two_versions_is_line_by_line_and_escaped(client, staff):
    labeler = LabelerFactory(criteria="Label hate\nLabel threats")
    labeler_version_create(labeler=labeler, criteria_text="Label hate\n<script>alert(1)</script>")
    html = client.get(
        reverse("manage_labeler", args=[labeler.pk]), {"a": 1, "b": 2}
    ).content.decode()
    assert '<span class="diff-remove">-Label threats</span>' in html
    assert '<span class="diff-add">+&lt;script&gt;alert(1)&lt;/script&gt;</span>' in html
    assert '<span class="diff-same"> Label hate</span>' in html


def test_the_diff_marks_bidi_overrides_and_zero_width_characters(client, staff):
    labeler = LabelerFactory(criteria="Label hate")
    labeler_version_create(labeler=labeler, criteria_text="Label ha\u200bte\nDo not\u202e label")
    html = client.get(
        reverse("manage_labeler", args=[labeler.pk]), {"a": 1, "b": 2}
    ).content.decode()
    diff = re.sub(r"<[^>]+>", "", html.split('id="diff"')[1].split("</pre>")[0])
    assert "ha⟨U+200B⟩te" in diff and "not⟨U+202E⟩ label" in diff
    # Only the draft's textarea holds the text as it is (to edit it).
    assert "\u202e" not in diff and "\u200b" not in diff


def test_the_relabel_button_queues_runs_of_undecided_recent_items_and_links_to_progress(
    client, staff, source
):
    labeler = source.labelers.get()
    waiting = ItemFactory(source=source)
    decided = ItemFactory(source=source, status=Item.Status.DECIDED)
    response = client.post(
        reverse("manage_labeler_relabel", args=[labeler.pk]), {"scope": "undecided", "days": 7}
    )
    run = RelabelRun.objects.get()
    assert response["Location"] == f"{reverse('manage_relabel_runs')}?ids={run.pk}"
    assert run.labeler_version == labeler.current_version and run.source == source
    assert waiting.pk in run.item_ids and decided.pk not in run.item_ids
    assert client.get(response["Location"]).status_code == 200


def decide(item, reviewer, action):
    reason = reason_id(action) if action in ("remove", "escalate") else None
    return decision_record(item=item, reviewer=reviewer, action=action, reason_id=reason)


def labeled_item(source, version, label, confidence, **item_fields):
    item = ItemFactory(source=source, **item_fields)
    Label.objects.create(
        item=item,
        labeler_version=version,
        status=Label.Status.DONE,
        label=label,
        confidence=confidence,
        violation_score=confidence if label == "1" else 1 - confidence,
        latency_ms=120.0,
        attempts=1,
        labeled_at=timezone.now(),
        model="cope-latest",
        content_hash=item.content_hash,
    )
    return item


@pytest.fixture
def decided_set(source):
    """22 decided items of the source's labeler: "1"s at .9 removed (12), "1"s at .6
    approved (6), "0"s approved (4)."""
    version = source.labelers.get().current_version
    reviewer = UserFactory()
    for confidence, label, action, count in [
        (0.9, "1", "remove", 12),
        (0.6, "1", "approve", 6),
        (0.8, "0", "approve", 4),
    ]:
        for _ in range(count):
            decide(labeled_item(source, version, label, confidence), reviewer, action)
    return version


def test_the_quality_page_shows_precision_kappa_and_a_chart_per_version(client, staff, decided_set):
    labeler = decided_set.labeler
    html = client.get(reverse("manage_labeler_quality", args=[labeler.pk])).content.decode()
    # Precision 12/18; kappa: po = 16/22, flag 18/22, remove 12/22,
    # pe = (18*12 + 4*10) / 484 = 256/484, kappa = (352 - 256) / (484 - 256) = 96/228.
    assert "0.667" in html and f"{96 / 228:.3f}" in html
    assert "<svg" in html and 'class="chart-bar"' in html
    # The advice: a minimum of .9 drops the six approved .6s: kappa 1.
    assert 'class="advised-threshold">0.9<' in html


def test_applying_the_advice_sets_the_minimum_confidence_and_re_evaluates(
    client, staff, decided_set, django_capture_on_commit_callbacks
):
    labeler = decided_set.labeler
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("manage_labeler_threshold", args=[labeler.pk]),
            {
                "min_confidence": "0.9",
                "seen": json.dumps(criteria.review_policy_snapshot(labeler)),
            },
        )
    labeler.refresh_from_db()
    assert labeler.min_confidence == 0.9
    reevaluation = Reevaluation.objects.get()
    assert reevaluation.labeler == labeler and reevaluation.state == Reevaluation.State.DONE


def test_a_threshold_outside_the_confidence_range_is_refused(client, staff):
    labeler = LabelerFactory()
    client.post(reverse("manage_labeler_threshold", args=[labeler.pk]), {"min_confidence": "0.3"})
    labeler.refresh_from_db()
    assert labeler.min_confidence is None and not Reevaluation.objects.exists()


def test_the_export_streams_one_json_object_per_decided_item(client, staff, source):
    version = source.labelers.get().current_version
    other = labeler_version_create(labeler=version.labeler, criteria_text="v2")
    reviewer = UserFactory()
    removed = labeled_item(source, version, "1", 0.9, content_text="bad words")
    Label.objects.create(
        item=removed,
        labeler_version=other,
        status=Label.Status.DONE,
        label="0",
        confidence=0.7,
        violation_score=0.3,
        model="cope-latest",
        content_hash=removed.content_hash,
    )
    decide(removed, reviewer, "remove")
    approved = labeled_item(source, version, "1", 0.6, content_text="fine words")
    decide(approved, reviewer, "approve")
    escalated = labeled_item(source, version, "1", 0.7)
    decide(escalated, reviewer, "escalate")
    labeled_item(source, version, "0", 0.9)  # never decided

    response = client.get(reverse("manage_export_decisions"))
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "application/x-ndjson"
    assert response["Content-Disposition"].startswith('attachment; filename="decisions-')
    body = b"".join(response.streaming_content).decode()
    assert body.endswith("\n")
    rows = [json.loads(line) for line in body.splitlines()]
    assert [row["item_id"] for row in rows] == [removed.pk, approved.pk]
    first = rows[0]
    assert set(first) == {
        "item_id",
        "revision",
        "source",
        "external_id",
        "content_text",
        "has_image",
        "has_video",
        "human_label",
        "action",
        "reason",
        "decided_at",
        "labels",
    }
    assert (first["content_text"], first["has_image"], first["has_video"]) == (
        "bad words",
        False,
        False,
    )
    assert (first["human_label"], first["action"], first["source"]) == ("1", "remove", source.slug)
    assert first["reason"]
    assert first["labels"] == [
        {
            "labeler": version.labeler.slug,
            "version": 1,
            "label": "1",
            "confidence": 0.9,
            "violation_score": 0.9,
            "model": "cope-latest",
        },
        {
            "labeler": version.labeler.slug,
            "version": 2,
            "label": "0",
            "confidence": 0.7,
            "violation_score": 0.3,
            "model": "cope-latest",
        },
    ]
    assert rows[1]["human_label"] == "0" and rows[1]["content_text"] == "fine words"


def test_drafts_show_on_the_labeler_page_but_not_as_current(client, staff):
    labeler = LabelerFactory()
    labeler_draft_save(labeler=labeler, criteria_text="new")
    html = client.get(reverse("manage_labeler", args=[labeler.pk])).content.decode()
    assert "Publish v2" in html and "Current version: <strong>v1</strong>" in html
    assert LabelerVersion.objects.filter(labeler=labeler, state="draft").count() == 1


def test_the_quality_page_counts_only_labels_of_the_chosen_window(client, staff, decided_set):
    labeler = decided_set.labeler
    Label.objects.filter(labeler_version=decided_set).update(
        labeled_at=timezone.now() - timedelta(days=40)
    )
    url = reverse("manage_labeler_quality", args=[labeler.pk])
    assert "Not enough decisions yet" in client.get(url, {"days": 30}).content.decode()
    assert 'class="advised-threshold">0.9<' in client.get(url, {"days": "all"}).content.decode()
