"""The admin: a source added here gets its credentials from the same service as
create_source (moderation.services.sources.source_create)."""

import re

from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages

from moderation.models import DecisionReason, Report, Source
from moderation.selectors.sources import source_for_token
from moderation.tests.factories import ItemFactory, LabelerFactory, SourceFactory, UserFactory


def test_an_admin_adds_a_source_with_its_settings_and_credentials_shown_once(client, db):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    labeler = LabelerFactory()
    response = client.post(
        "/admin/moderation/source/add/",
        {
            "name": "Forum",
            "slug": "forum",
            "labelers": [labeler.pk],
            "active": "on",
            "review_sla_minutes": "240",
            "callback_url": "https://products.example/hook",
            "strike_window_days": "30",
            "account_thresholds": "[]",
        },
    )
    assert response.status_code == 302
    source = Source.objects.get(slug="forum")
    assert list(source.labelers.all()) == [labeler]
    assert source.review_sla_minutes == 240 and source.strike_window_days == 30
    assert source.callback_url == "https://products.example/hook"
    [shown] = [str(m) for m in get_messages(response.wsgi_request) if "not shown again" in str(m)]
    secret, token = re.search(r"Signing secret: (\S+) — API token: (\S+)", shown).groups()
    assert secret == source.webhook_secret and secret.startswith("whsec_")
    # The token is stored only as its hash; the one shown opens the item API.
    assert token not in source.api_token_hash and source_for_token(token) == source


def test_an_admin_adds_a_source_routed_to_no_labeler_when_none_is_chosen(client, db):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    response = client.post(
        "/admin/moderation/source/add/",
        {"name": "Lonely", "slug": "lonely", "active": "on", "account_thresholds": "[]"},
    )
    assert response.status_code == 302
    assert not Source.objects.get(slug="lonely").labelers.exists()


def test_reports_are_listed_read_only_without_their_comments(client, db):
    admin_user = get_user_model().objects.create_superuser("boss", password="x")
    client.force_login(admin_user)
    source = SourceFactory()
    item = ItemFactory(source=source)
    Report.objects.create(
        source=source,
        report_id="r-1",
        webhook_id="w-1",
        item=item,
        reason="spam",
        reporter_id="u-9",
        comment="<b>secret words</b>",
    )
    listing = client.get("/admin/moderation/report/")
    assert listing.status_code == 200
    page = listing.content.decode()
    assert "r-1" in page and "u-9" in page and "secret words" not in page
    report = Report.objects.get()
    detail = client.get(f"/admin/moderation/report/{report.pk}/change/").content.decode()
    assert "&lt;b&gt;secret words&lt;/b&gt;" in detail and "<b>secret words" not in detail
    assert client.get("/admin/moderation/report/add/").status_code == 403
    assert client.post(f"/admin/moderation/report/{report.pk}/delete/").status_code == 403


def test_the_sources_page_shows_the_strike_settings_with_each_reasons_weight(client, db):
    """Strike window and thresholds are the source's; the weights are the reasons': the
    source's page shows all three together, the weights linked to where they are set."""
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    source = SourceFactory(strike_window_days=30)
    first, second = DecisionReason.objects.filter(action="remove", active=True)[:2]
    DecisionReason.objects.filter(pk=first.pk).update(name="Spam <b>", strike_weight=0)
    DecisionReason.objects.filter(pk=second.pk).update(strike_weight=3)
    approval = DecisionReason.objects.filter(action="approve").first()
    page = client.get(f"/admin/moderation/source/{source.pk}/change/").content.decode()
    assert 'name="strike_window_days"' in page and 'value="30"' in page
    assert 'name="account_thresholds"' in page
    assert "Spam &lt;b&gt;: 0" in page and f"{second.name}: 3" in page
    assert approval is None or f"{approval.name}: " not in page
    assert "/admin/moderation/decisionreason/?action__exact=remove" in page
