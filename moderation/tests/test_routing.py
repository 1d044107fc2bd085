"""Team queues and routing rules: each condition kind (in memory and as the preview's SQL),
precedence, the default queue, re-routing on new facts, claimed items never moved, reviewers
served only their queues (every view and POST), the rules' history, the preview, languages."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEntry
from labelers.models import Label
from moderation.intake import IntakePayload
from moderation.language import detect_language
from moderation.models import (
    Author,
    Bank,
    BankMatch,
    Decision,
    Item,
    Queue,
    Report,
    ReviewerSettings,
    RoutingChange,
    RoutingRule,
    Strike,
)
from moderation.routing import ConditionError, conditions_clean, rule_q
from moderation.selectors.routing import routing_preview
from moderation.services.decisions import decision_record
from moderation.services.items import item_ingest
from moderation.services.routing import item_route, items_reroute_waiting
from moderation.services.routing_rules import (
    queue_save,
    rule_delete,
    rule_enable,
    rule_move,
    rule_save,
)
from moderation.services.verdicts import item_labels_changed
from moderation.tests.factories import ItemFactory, SourceFactory, UserFactory, reason_id

pytestmark = pytest.mark.django_db

LANGUAGES_FILE = Path(__file__).parent / "data" / "languages.tsv"


def _rule(admin, queue, conditions, name="rule"):
    return rule_save(actor=admin, rule=None, name=name, queue=queue, conditions=conditions)


def _routed(item) -> int | None:
    item_route(item_id=item.pk)
    item.refresh_from_db()
    return item.queue_id


def _sql_matches(conditions, item) -> bool:
    """The preview's SQL form of the same conditions agrees with the in-memory match."""
    return Item.objects.filter(rule_q(conditions), pk=item.pk).exists()


# --- Conditions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"score_min": 2}, "score_min"),
        ({"score_min": 0.9, "score_max": 0.1}, "score_min"),
        ({"formats": ["audio"]}, "formats"),
        ({"sources": ["x"]}, "sources"),
        ({"strikes_min": 0}, "strikes_min"),
        ({"colour": "red"}, "conditions"),
        ([], "conditions"),
    ],
)
def test_a_bad_condition_is_refused_naming_its_field(raw, field):
    with pytest.raises(ConditionError) as caught:
        conditions_clean(raw)
    assert caught.value.field == field


def test_a_source_condition_routes_only_that_sources_items(admin, graphic):
    kept, other = SourceFactory(), SourceFactory()
    _rule(admin, graphic, {"sources": [kept.pk]})
    inside, outside = ItemFactory(source=kept), ItemFactory(source=other)
    assert _routed(inside) == graphic.pk
    assert _routed(outside) is None
    assert _sql_matches({"sources": [kept.pk]}, inside)
    assert not _sql_matches({"sources": [kept.pk]}, outside)


def test_a_score_range_condition_includes_its_bounds(admin, graphic):
    conditions = {"score_min": 0.9, "score_max": 0.95}
    _rule(admin, graphic, conditions)
    low, edge, high = (ItemFactory(violation_score=s) for s in (0.89, 0.9, 0.96))
    assert [_routed(item) for item in (low, edge, high)] == [None, graphic.pk, None]
    assert [_sql_matches(conditions, item) for item in (low, edge, high)] == [False, True, False]


def test_a_media_condition_tells_images_from_text(admin, graphic):
    _rule(admin, graphic, {"formats": ["image"]})
    image = ItemFactory(content_image="images/a.png")
    text = ItemFactory()
    assert _routed(image) == graphic.pk
    assert _routed(text) is None
    assert _sql_matches({"formats": ["image"]}, image)
    assert _sql_matches({"formats": ["text"]}, text)
    assert not _sql_matches({"formats": ["image"]}, text)


def test_a_language_condition_uses_the_language_detected_at_intake(admin, graphic):
    _rule(admin, graphic, {"languages": ["pt"]})
    portuguese = ItemFactory(language="pt")
    english = ItemFactory(language="en")
    assert _routed(portuguese) == graphic.pk
    assert _routed(english) is None
    assert _sql_matches({"languages": ["pt"]}, portuguese)


def test_a_labeler_condition_counts_only_that_labelers_flag(admin, graphic):
    source = SourceFactory()
    labeler = source.labelers.get()
    version = labeler.versions.get()
    _rule(admin, graphic, {"labelers": [labeler.pk]})
    flagged = ItemFactory(source=source)
    Label.objects.create(item=flagged, labeler_version=version, status="done", label="1")
    cleared = ItemFactory(source=source)
    Label.objects.create(item=cleared, labeler_version=version, status="done", label="0")
    assert _routed(flagged) == graphic.pk
    assert _routed(cleared) is None
    assert _sql_matches({"labelers": [labeler.pk]}, flagged)
    assert not _sql_matches({"labelers": [labeler.pk]}, cleared)


def test_a_report_reason_condition_counts_open_reports_only(admin, graphic):
    _rule(admin, graphic, {"report_reasons": ["harassment"]})
    reported = ItemFactory(status=Item.Status.REPORTED, report_score=0.5)
    Report.objects.create(
        source=reported.source, item=reported, report_id="r1", webhook_id="w1", reason="harassment"
    )
    other = ItemFactory(status=Item.Status.REPORTED, report_score=0.5)
    Report.objects.create(
        source=other.source, item=other, report_id="r2", webhook_id="w2", reason="spam"
    )
    assert _routed(reported) == graphic.pk
    assert _routed(other) is None
    assert _sql_matches({"report_reasons": ["harassment"]}, reported)
    assert not _sql_matches({"report_reasons": ["harassment"]}, other)


def _strike(author, source, weight=1):
    reviewer = UserFactory()
    decided = ItemFactory(source=source, author=author)
    decision = decision_record(
        item=decided, reviewer=reviewer, action="remove", reason_id=reason_id("remove")
    )
    Strike.objects.filter(decision=decision).delete()
    return Strike.objects.create(
        author=author, item=decided, decision=decision, weight=weight, created_at=timezone.now()
    )


def test_a_strikes_condition_counts_the_authors_active_strikes(admin, graphic):
    source = SourceFactory()
    author = Author.objects.create(source=source, external_id="u1")
    clean = Author.objects.create(source=source, external_id="u2")
    _strike(author, source, weight=2)
    _rule(admin, graphic, {"strikes_min": 2})
    repeat = ItemFactory(source=source, author=author)
    first = ItemFactory(source=source, author=clean)
    assert _routed(repeat) == graphic.pk
    assert _routed(first) is None
    assert _sql_matches({"strikes_min": 2}, repeat)
    assert not _sql_matches({"strikes_min": 2}, first)


def test_a_bank_condition_routes_items_matching_that_bank(admin, graphic):
    bank = Bank.objects.create(name="Known graphic", action=Bank.Action.REVIEW)
    _rule(admin, graphic, {"banks": [bank.pk]})
    matched, unmatched = ItemFactory(), ItemFactory()
    BankMatch.objects.create(item=matched, revision=1, bank=bank, type="sha256")
    assert _routed(matched) == graphic.pk
    assert _routed(unmatched) is None
    assert _sql_matches({"banks": [bank.pk]}, matched)


# --- Precedence, default, re-routing ----------------------------------------------------------


def test_the_first_matching_rule_wins_and_reordering_changes_the_winner(admin, graphic):
    spam = queue_save(actor=admin, queue=None, name="Spam")
    first = _rule(admin, graphic, {"score_min": 0.5}, name="high")
    _rule(admin, spam, {}, name="everything")
    item = ItemFactory(violation_score=0.8)
    assert _routed(item) == graphic.pk
    rule_move(actor=admin, rule=first, up=False)
    assert _routed(item) == spam.pk
    rule_enable(actor=admin, rule=RoutingRule.objects.get(name="everything"), enabled=False)
    assert _routed(item) == graphic.pk


def test_an_item_no_rule_matches_waits_in_the_default_queue(admin, graphic):
    _rule(admin, graphic, {"languages": ["ar"]})
    item = ItemFactory(language="en")
    assert _routed(item) is None
    assert Queue.objects.get(is_default=True).name == "Default"


def test_a_new_label_re_routes_an_undecided_item(admin, graphic):
    _rule(admin, graphic, {"score_min": 0.9})
    item = ItemFactory(violation_score=0.5, queue_score=0.5)
    assert _routed(item) is None
    item_labels_changed(
        item_id=item.pk, violation_score=0.95, flagged=True, labeling=False, failed=False
    )
    item.refresh_from_db()
    assert item.queue_id == graphic.pk


def test_a_claimed_item_is_never_moved(admin, graphic):
    _rule(admin, graphic, {"score_min": 0.9})
    holder = UserFactory()
    item = ItemFactory(
        violation_score=0.5,
        claimed_by=holder,
        claim_expires_at=timezone.now() + timedelta(minutes=5),
    )
    item_labels_changed(
        item_id=item.pk, violation_score=0.95, flagged=True, labeling=False, failed=False
    )
    item.refresh_from_db()
    assert item.queue_id is None
    # Once the claim runs out, the next fact moves it.
    Item.objects.filter(pk=item.pk).update(claim_expires_at=timezone.now() - timedelta(seconds=1))
    assert _routed(item) == graphic.pk


def test_a_decided_item_is_never_moved(admin, graphic):
    item = ItemFactory(violation_score=0.95, status=Item.Status.DECIDED)
    _rule(admin, graphic, {"score_min": 0.9})
    assert _routed(item) is None


def test_a_rule_change_re_routes_the_waiting_items(admin, graphic):
    item = ItemFactory(violation_score=0.95)
    _rule(admin, graphic, {"score_min": 0.9})
    assert items_reroute_waiting() == item.pk
    item.refresh_from_db()
    assert item.queue_id == graphic.pk
    assert items_reroute_waiting(after_id=item.pk) is None


# --- History ---------------------------------------------------------------------------------


def test_every_rule_change_is_versioned_with_who_made_it_and_audited(admin, graphic):
    rule = _rule(admin, graphic, {"score_min": 0.9})
    rule_save(actor=admin, rule=rule, name="renamed", queue=graphic, conditions={"score_min": 0.8})
    rule_enable(actor=admin, rule=rule, enabled=False)
    changes = list(RoutingChange.objects.filter(rule=rule).order_by("id"))
    assert [change.kind for change in changes] == ["create", "update", "disable"]
    assert {change.actor for change in changes} == {admin}
    assert changes[1].before["conditions"] == {"score_min": 0.9}
    assert changes[1].after["conditions"] == {"score_min": 0.8}
    audited = AuditEntry.objects.filter(action__startswith="routing_rule.").values_list(
        "action", flat=True
    )
    assert sorted(audited) == [
        "routing_rule.create",
        "routing_rule.disable",
        "routing_rule.update",
    ]


def test_the_routing_page_lists_rules_and_history_for_admins_only(client, admin, graphic):
    _rule(admin, graphic, {"score_min": 0.9}, name="Graphic images")
    client.force_login(admin)
    page = client.get(reverse("routing"))
    assert page.status_code == 200
    assert b"Graphic images" in page.content
    assert admin.username.encode() in page.content
    client.force_login(UserFactory())
    assert client.get(reverse("routing")).status_code == 403


def test_a_rule_form_with_a_bad_score_answers_400_naming_it(client, admin, graphic):
    client.force_login(admin)
    response = client.post(
        reverse("routing_rule_new"),
        {"name": "x", "queue": graphic.pk, "score_min": "lots", "save": "1"},
    )
    assert response.status_code == 400
    assert b'data-field="score_min"' in response.content
    assert not RoutingRule.objects.exists()


# --- Preview ---------------------------------------------------------------------------------


def test_the_preview_counts_the_items_that_would_move_with_examples(admin, graphic):
    source = SourceFactory()
    movers = [ItemFactory(source=source, violation_score=0.95) for _ in range(3)]
    ItemFactory(source=source, violation_score=0.2)
    ItemFactory(violation_score=0.99)  # another source
    old = ItemFactory(source=source, violation_score=0.95)
    Item.objects.filter(pk=old.pk).update(received_at=timezone.now() - timedelta(days=8))
    proposed = RoutingRule(
        name="new", queue=graphic, conditions={"sources": [source.pk], "score_min": 0.9}
    )
    preview = routing_preview(proposed=[proposed], days=7)
    assert preview.total == 5
    assert preview.moved == 3
    (move,) = preview.moves
    assert move.source.is_default and move.target == graphic
    assert {item.pk for item in move.examples} <= {item.pk for item in movers}
    assert not RoutingRule.objects.exists()  # nothing saved


def test_the_rule_page_previews_then_saves(client, admin, graphic):
    source = SourceFactory()
    ItemFactory(source=source, violation_score=0.95, content_image="images/x.png")
    client.force_login(admin)
    fields = {
        "name": "Graphic images",
        "queue": graphic.pk,
        "sources": [source.pk],
        "formats": ["image"],
        "score_min": "0.9",
        "enabled": "on",
        "days": "7",
    }
    preview = client.post(reverse("routing_rule_new"), {**fields, "preview": "1"})
    assert preview.status_code == 200
    assert preview.context["preview"].moved == 1
    assert not RoutingRule.objects.exists()
    saved = client.post(reverse("routing_rule_new"), {**fields, "save": "1"})
    assert saved.status_code == 302
    rule = RoutingRule.objects.get()
    assert rule.conditions == {"sources": [source.pk], "formats": ["image"], "score_min": 0.9}


# --- Reviewers served only their queues -------------------------------------------------------


@pytest.fixture
def routed(admin, graphic):
    """An item in the Graphic queue."""
    _rule(admin, graphic, {"score_min": 0.9})
    item = ItemFactory(violation_score=0.95)
    assert _routed(item) == graphic.pk
    return item


def test_a_team_member_gets_their_queues_items_by_next(client, team, routed):
    member = UserFactory()
    member.groups.add(team)
    client.force_login(member)
    response = client.get(reverse("queue_next"))
    assert response.url.startswith(reverse("item", args=[routed.pk]))


def test_a_reviewer_outside_the_team_is_never_served_nor_shown_the_item(client, routed, graphic):
    outsider = UserFactory()
    client.force_login(outsider)
    assert client.get(reverse("queue_next")).url.startswith(reverse("queue"))
    assert routed.pk not in [item.pk for item in client.get(reverse("queue")).context["items"]]
    assert client.get(reverse("item", args=[routed.pk])).status_code == 404
    decision = client.post(
        reverse("item", args=[routed.pk]),
        {"action": "approve", "revision": 1},
    )
    assert decision.status_code == 404
    assert client.post(reverse("item_skip", args=[routed.pk])).status_code == 404
    assert client.get(reverse("queue") + f"?queue={graphic.pk}").status_code == 404
    routed.refresh_from_db()
    assert routed.claimed_by is None
    assert not Decision.objects.filter(item=routed).exists()


def test_seniors_and_admins_see_every_queue(client, routed):
    client.force_login(UserFactory(senior=True))
    assert client.get(reverse("item", args=[routed.pk])).status_code == 200


def test_the_queue_shows_a_tab_per_queue_with_counts(client, team, routed, graphic):
    member = UserFactory()
    member.groups.add(team)
    client.force_login(member)
    page = client.get(reverse("queue"))
    tabs = {
        tab["figures"].queue.name: tab["figures"].waiting.n for tab in page.context["queue_tabs"]
    }
    assert tabs == {"Default": 0, "Graphic": 1}


def test_a_queue_without_escalate_refuses_an_escalation(admin, graphic):
    queue_save(actor=admin, queue=graphic, allowed_actions=["approve", "remove"])
    _rule(admin, graphic, {})
    item = ItemFactory()
    assert _routed(item) == graphic.pk
    with pytest.raises(Exception, match="does not allow escalate"):
        decision_record(
            item=item, reviewer=UserFactory(), action="escalate", reason_id=reason_id("escalate")
        )


# --- Languages -------------------------------------------------------------------------------


def test_language_detection_reads_the_shipped_multilingual_set():
    rows = [
        line.split("\t", 1)
        for line in LANGUAGES_FILE.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    right = sum(detect_language(text) == language for language, text in rows)
    assert len(rows) >= 50
    assert len({language for language, _ in rows}) >= 12
    assert right / len(rows) >= 0.95, right


def test_a_text_without_letters_has_no_language():
    assert detect_language("") == ""
    assert detect_language("12 :) !!") == ""


def test_intake_stores_the_language(post_webhook, source):
    post_webhook(
        source, {"external_id": "pt-1", "content_text": "Não acredito no que disseram sobre você"}
    )
    assert Item.objects.get(external_id="pt-1").language == "pt"


def test_the_dispatch_detects_the_language_not_the_webhooks_request(source, dispatch):
    portuguese = "Não acredito no que disseram sobre você"
    item, _ = item_ingest(
        source=source,
        payload=IntakePayload(external_id="pt-2", content_text=portuguese),
        webhook_id="msg_pt_2",
    )
    # The request stored the item only; the dispatch, before labels and routing, detects.
    assert Item.objects.get(pk=item.pk).language == ""
    dispatch()
    assert Item.objects.get(pk=item.pk).language == "pt"
    # An edit's new text is detected again.
    item_ingest(
        source=source,
        payload=IntakePayload(
            external_id="pt-2", content_text="Ich kann nicht glauben, was sie gesagt haben"
        ),
        webhook_id="msg_pt_3",
    )
    assert Item.objects.get(pk=item.pk).language == ""
    dispatch()
    assert Item.objects.get(pk=item.pk).language == "de"


def test_next_serves_the_reviewers_languages_first(client):
    reviewer = UserFactory()
    ReviewerSettings.objects.create(user=reviewer, languages=["pt"])
    top = ItemFactory(violation_score=0.99, language="en")
    mine = ItemFactory(violation_score=0.6, language="pt")
    client.force_login(reviewer)
    assert client.get(reverse("queue_next")).url.startswith(reverse("item", args=[mine.pk]))
    Item.objects.filter(pk=mine.pk).update(status=Item.Status.DECIDED, queue_key=None)
    # None left in their languages: the rest of their queues, by score.
    client.post(reverse("item_release", args=[mine.pk]))
    assert client.get(reverse("queue_next")).url.startswith(reverse("item", args=[top.pk]))


def test_with_no_rules_routing_costs_no_query(django_assert_num_queries):
    item = ItemFactory()
    item_route(item_id=item.pk)  # the rules' version, read once a second at most
    with django_assert_num_queries(0):
        assert item_route(item_id=item.pk) is False


def test_deleting_the_last_rule_sends_its_items_back_to_the_default_queue(admin, graphic):
    rule = _rule(admin, graphic, {})
    item = ItemFactory()
    assert _routed(item) == graphic.pk
    rule_delete(actor=admin, rule=rule)
    items_reroute_waiting()
    item.refresh_from_db()
    assert item.queue_id is None


def test_a_queues_media_settings_and_actions_win_on_the_item_page(client, admin, graphic, team):
    queue_save(
        actor=admin,
        queue=graphic,
        always_blur=True,
        always_grayscale=True,
        allowed_actions=["approve", "remove"],
    )
    _rule(admin, graphic, {})
    item = ItemFactory(content_image="images/a.png")
    assert _routed(item) == graphic.pk
    member = UserFactory()
    member.groups.add(team)
    ReviewerSettings.objects.create(user=member, blur_media=False, grayscale_media=False)
    client.force_login(member)
    page = client.get(reverse("item", args=[item.pk]))
    assert page.context["review_settings"].blur_media is True
    assert page.context["review_settings"].grayscale_media is True
    assert [choice.value for choice in page.context["actions"]] == ["approve", "remove"]
    assert b'id="item-queue"' in page.content
    # Shown, not saved: the reviewer's own settings stay theirs.
    assert ReviewerSettings.objects.get(user=member).blur_media is False
