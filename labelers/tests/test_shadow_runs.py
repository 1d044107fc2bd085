"""Shadow runs end to end with the fake labeling API over HTTP (tasks run eagerly): answers
stored as shadow labels only, items and the queue untouched, the cache before any paid call,
resuming after a lost worker, retries, a refused key, and the pages."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from labelers import guarded, shadow, tasks
from labelers.criteria import labeler_draft_save
from labelers.models import Label, ShadowLabel, ShadowRun
from moderation.models import Decision, Item
from moderation.tests.factories import ItemFactory, SourceFactory, UserFactory

pytestmark = pytest.mark.django_db

# The fake API flags texts with "hate"/"kill"; "[invert]" in the criteria flips its answer.
DRAFT = "Label hateful content [invert]"


@pytest.fixture
def source():
    return SourceFactory()


@pytest.fixture
def labeler(source):
    return source.labelers.get()


@pytest.fixture
def draft(labeler):
    return labeler_draft_save(labeler=labeler, criteria_text=DRAFT)


def items(source, *texts, **fields):
    """Items received one minute apart, the last text the most recent."""
    made = []
    for minutes, text in enumerate(texts):
        item = ItemFactory(source=source, content_text=text, **fields)
        Item.objects.filter(pk=item.pk).update(
            received_at=timezone.now() - timedelta(minutes=len(texts) - minutes)
        )
        made.append(item)
    return made


@pytest.fixture
def run_now(django_capture_on_commit_callbacks):
    """Start a run as the page does; its task runs eagerly once the run is committed."""

    def start(version, source, *, sample_size=10, decided_only=False):
        with django_capture_on_commit_callbacks(execute=True):
            run = tasks.shadow_run_start(
                version=version,
                source=source,
                sample_size=sample_size,
                decided_only=decided_only,
            )
        run.refresh_from_db()
        return run

    return start


def item_state(item_ids):
    return list(
        Item.objects.filter(pk__in=item_ids)
        .order_by("id")
        .values_list("status", "violation_score", "queue_key", "verdict_versions", "decided_at")
    )


def test_a_run_stores_one_shadow_answer_per_sampled_item(fake_api, source, draft, run_now):
    hateful, kind = items(source, "I hate you conf=0.9", "what a nice day conf=0.8")
    run = run_now(draft, source)
    assert (run.state, run.done, run.total) == ("done", 2, 2)
    answers = dict(run.labels.values_list("item_id", "label"))
    assert answers == {hateful.pk: "0", kind.pk: "1"}  # the draft inverts
    assert [call["criteria_text"] for call in fake_api.calls] == [DRAFT, DRAFT]


def test_a_run_never_creates_labels_nor_moves_an_item(fake_api, source, labeler, draft, run_now):
    flagged = items(source, "I hate you", status=Item.Status.FLAGGED)[0]
    cleared = items(source, "hello", status=Item.Status.LABELED, violation_score=0.2)[0]
    Label.objects.create(
        item=cleared,
        labeler_version=labeler.current_version,
        status=Label.Status.DONE,
        label="0",
        confidence=0.8,
        content_hash=cleared.content_hash,
        model="cope-latest",
    )
    before, labels_before = item_state([flagged.pk, cleared.pk]), list(Label.objects.values())
    run = run_now(draft, source)
    assert run.labels.filter(status="done").count() == 2
    assert item_state([flagged.pk, cleared.pk]) == before
    assert list(Label.objects.values()) == labels_before


def test_the_sample_is_the_sources_most_recent_items(fake_api, source, draft, run_now):
    oldest, middle, newest = items(source, "one", "two", "three")
    items(SourceFactory(), "another product's item")
    run = run_now(draft, source, sample_size=2)
    assert run.item_ids == [newest.pk, middle.pk]
    assert set(run.labels.values_list("item_id", flat=True)) == {newest.pk, middle.pk}


def decide(item, action, *, revision=1, undoes=None, reviewer=True):
    return Decision.objects.create(
        item=item,
        revision=revision,
        action=action,
        undoes=undoes,
        reviewer=UserFactory() if reviewer else None,
    )


def test_decided_only_samples_items_whose_final_decision_is_approve_or_remove(
    fake_api, source, draft, run_now
):
    approved, undone, escalated, undecided, edited = items(source, "a", "b", "c", "d", "e")
    decide(approved, "approve")
    decide(undone, "undo", undoes=decide(undone, "remove"))
    decide(escalated, "escalate")
    decide(edited, "remove")
    Item.objects.filter(pk=edited.pk).update(revision=2)  # edited after its decision
    (auto_approved,) = items(source, "f")
    decide(auto_approved, "approve", reviewer=False)  # the system's: not a reviewer's answer
    run = run_now(draft, source, decided_only=True)
    assert run.item_ids == [approved.pk]


def test_the_baseline_is_the_published_version_and_the_policy_is_copied(
    fake_api, source, labeler, draft, run_now
):
    items(source, "x")
    run = run_now(draft, source)
    labeler_draft_save(labeler=labeler, criteria_text="edited afterwards")
    run.refresh_from_db()
    assert run.baseline == labeler.current_version
    assert (run.criteria_text, run.version_id) == (DRAFT, draft.pk)


def test_a_second_run_of_the_same_policy_makes_no_api_call(fake_api, source, draft, run_now):
    items(source, "I hate you", "hello there", "kill it")
    first = run_now(draft, source)
    fake_api.calls.clear()
    second = run_now(draft, source)
    assert fake_api.calls == []
    assert second.labels.filter(status="done", cache_hit=True).count() == 3
    assert dict(second.labels.values_list("item_id", "label")) == dict(
        first.labels.values_list("item_id", "label")
    )


def published_answer(source, labeler):
    """An item the published version answered "1" at 0.77 with cope-latest; its version."""
    item = items(source, "I hate you")[0]
    published = labeler.current_version
    Label.objects.create(
        item=item,
        labeler_version=published,
        status=Label.Status.DONE,
        label="1",
        confidence=0.77,
        content_hash=item.content_hash,
        model="cope-latest",
    )
    return published


def test_a_draft_with_the_published_policy_reuses_its_labels(fake_api, source, labeler, run_now):
    published = published_answer(source, labeler)
    draft = labeler_draft_save(labeler=labeler, criteria_text=published.criteria_text)
    run = run_now(draft, source)
    assert fake_api.calls == []
    answer = run.labels.get()
    assert (answer.label, answer.confidence, answer.cache_hit) == ("1", 0.77, True)


def test_a_label_of_another_model_is_not_reused(fake_api, source, labeler, run_now):
    published = published_answer(source, labeler)
    draft = labeler_draft_save(
        labeler=labeler, criteria_text=published.criteria_text, model="cope-b-a4b"
    )
    run_now(draft, source)
    assert [call["model"] for call in fake_api.calls] == ["cope-b-a4b"]


def test_a_run_whose_worker_died_is_resumed_by_the_sweep_for_the_missing_items_only(
    fake_api, source, draft, dispatch
):
    sampled = items(source, "a", "b", "c", "d", "e")
    run = shadow.shadow_run_create(version=draft, source=source, sample_size=5, decided_only=False)
    for item in sampled[:2]:  # answered before the worker was killed
        ShadowLabel.objects.create(
            run=run,
            item=item,
            status="done",
            label="0",
            confidence=0.9,
            content_hash=item.content_hash,
            policy_hash="x",
        )
    stalled = timezone.now() - timedelta(seconds=shadow.SHADOW_RUN_ABANDONED_SECONDS + 1)
    ShadowRun.objects.filter(pk=run.pk).update(state="running", done=2, updated_at=stalled)
    dispatch()  # beat's sweep
    run.refresh_from_db()
    assert (run.state, run.done) == ("done", 5)
    assert sorted(call["content_text"] for call in fake_api.calls) == ["c", "d", "e"]
    assert run.labels.count() == 5


def test_a_redelivered_message_does_nothing_while_the_run_is_running(fake_api, source, draft):
    items(source, "a")
    run = shadow.shadow_run_create(version=draft, source=source, sample_size=5, decided_only=False)
    ShadowRun.objects.filter(pk=run.pk).update(state="running")
    assert tasks.shadow_run_task(run.pk) == 0
    assert fake_api.calls == [] and not run.labels.exists()


def test_a_refused_key_stops_the_run_with_a_clear_error(fake_api, source, draft, run_now):
    items(source, "a", "b", "c")
    fake_api.configure(status401=True)
    run = run_now(draft, source)
    assert run.state == "failed"
    assert "refused the key" in run.error and "ZENTROPI_API_KEY" in run.error
    assert len(fake_api.calls) == 1 and not run.labels.exists()


def test_a_failed_run_resumed_after_the_key_is_fixed_finishes(
    fake_api, source, draft, run_now, django_capture_on_commit_callbacks
):
    items(source, "a", "b")
    fake_api.configure(status401=True)
    run = run_now(draft, source)
    fake_api.reset()
    guarded.api_key_refusals_forget()
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.shadow_run_resume(run=run)
    run.refresh_from_db()
    assert (run.state, run.done, run.labels.count()) == ("done", 2, 2)


def test_a_passing_fault_is_retried_with_backoff_then_answered(
    fake_api, source, draft, run_now, settings
):
    settings.LABEL_BACKOFF_BASE = 0.01
    items(source, "I hate you")
    fake_api.configure(script=[500, 429])
    run = run_now(draft, source)
    assert [call["outcome"] for call in fake_api.calls] == ["500", "429", "ok"]
    assert run.labels.get().status == "done"


def test_an_item_that_keeps_failing_is_recorded_failed_with_its_kind(
    fake_api, source, draft, run_now, settings
):
    settings.LABEL_BACKOFF_BASE = 0.01
    refused, flaky = items(source, "bad [reject]", "flaky")  # the newest is asked first
    fake_api.configure(script=[503] * shadow.SHADOW_ATTEMPTS)  # the first item, every attempt
    run = run_now(draft, source)
    errors = dict(run.labels.values_list("item_id", "error"))
    assert run.state == "done" and run.labels.filter(status="failed").count() == 2
    assert errors[flaky.pk].startswith("transient: 503")
    assert errors[refused.pk].startswith("refused: 422")


def test_an_item_whose_stored_media_is_gone_is_recorded_failed_without_a_call(
    fake_api, source, draft, run_now
):
    gone, kind = items(source, "a picture", "what a nice day")
    Item.objects.filter(pk=gone.pk).update(
        content_image="images/gone.png", content_image_type="image/png"
    )
    run = run_now(draft, source)
    assert run.state == "done"
    failed = run.labels.get(item=gone)
    assert failed.status == "failed" and failed.error.startswith("refused: cannot read")
    assert run.labels.get(item=kind).status == "done" and len(fake_api.calls) == 1


# --- Pages ---------------------------------------------------------------------------------


def test_the_shadow_pages_are_refused_to_reviewers_who_are_not_staff(
    client, fake_api, source, labeler, draft
):
    items(source, "a")
    run = shadow.shadow_run_create(version=draft, source=source, sample_size=5, decided_only=False)
    client.force_login(UserFactory())
    assert client.get(reverse("manage_shadow_run", args=[run.pk])).status_code == 403
    start = reverse("manage_labeler_shadow", args=[labeler.pk])
    form = {"version": draft.pk, "source": source.pk, "sample_size": 5}
    assert client.post(start, form).status_code == 403
    resume = reverse("manage_shadow_run_resume", args=[run.pk])
    assert client.post(resume).status_code == 403
    assert ShadowRun.objects.count() == 1 and fake_api.calls == []


def test_staff_start_a_run_and_read_the_comparison(
    client, staff, fake_api, source, labeler, draft, django_capture_on_commit_callbacks
):
    hateful, kind = items(source, "I hate you conf=0.9", "nice day conf=0.8")
    for item, label in ((hateful, "1"), (kind, "0")):
        Label.objects.create(
            item=item,
            labeler_version=labeler.current_version,
            status="done",
            label=label,
            confidence=0.9,
            content_hash=item.content_hash,
        )
    decide(hateful, "remove")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("manage_labeler_shadow", args=[labeler.pk]),
            {"version": draft.pk, "source": source.pk, "sample_size": 10},
        )
    run = ShadowRun.objects.get()
    assert response["Location"] == reverse("manage_shadow_run", args=[run.pk])
    html = client.get(response["Location"]).content.decode()
    assert 'http-equiv="refresh"' not in html  # done: nothing to follow
    assert "data-refresh-seconds" not in html
    assert re.search(r'id="shadow-flagged">1\b', html)  # the draft flags only "nice day"
    assert re.search(r'id="baseline-flagged">1\b', html)
    assert f'href="/items/{hateful.pk}/"' in html and f'href="/items/{kind.pk}/"' in html
    assert "style=" not in html and re.findall(r"<script(?![^>]*\bsrc=)", html) == []


def test_a_run_in_progress_refreshes_its_page(client, staff, source, draft):
    items(source, "a")
    run = shadow.shadow_run_create(version=draft, source=source, sample_size=5, decided_only=False)
    html = client.get(reverse("manage_shadow_run", args=[run.pk])).content.decode()
    # app.js reloads it (and lets the reader stop that; a <meta> refresh could not be
    # stopped: axe-core's meta-refresh rule); the browser test sees it reload.
    assert 'id="auto-refresh" data-refresh-seconds="3"' in html
    assert 'id="shadow-progress">0 / 1<' in html


def test_the_labeler_page_offers_the_shadow_run_and_lists_runs(
    client, staff, source, labeler, draft
):
    items(source, "a")
    run = shadow.shadow_run_create(version=draft, source=source, sample_size=5, decided_only=False)
    html = client.get(reverse("manage_labeler", args=[labeler.pk])).content.decode()
    assert "Shadow-run the draft" in html and 'id="shadow-form"' in html
    assert f'href="{reverse("manage_shadow_run", args=[run.pk])}"' in html


class OpenBreaker:
    def wait_seconds(self):
        return 30.0


def test_while_the_api_is_failing_a_run_waits_in_the_queue_without_calling(
    fake_api, source, draft, run_now, monkeypatch
):
    items(source, "a", "b")
    monkeypatch.setattr(guarded, "get_breaker", OpenBreaker)
    run = run_now(draft, source)
    assert run.state == "queued" and "failing" in run.error
    assert fake_api.calls == [] and not run.labels.exists()


def test_the_sweep_sends_a_queued_run_again_a_minute_on(source, draft):
    items(source, "a")
    run = shadow.shadow_run_create(version=draft, source=source, sample_size=5, decided_only=False)
    assert shadow.shadow_runs_lost() == []  # just created: its message is on its way
    ShadowRun.objects.filter(pk=run.pk).update(updated_at=timezone.now() - timedelta(minutes=2))
    assert shadow.shadow_runs_lost() == [run.pk]
    assert shadow.shadow_runs_lost() == []  # sent once a minute at most
