"""Submitted text as reviewers see it: characters that hide or reorder text are made
visible, and everything stays escaped."""

import re

import pytest

from moderation.templatetags.content import hidden_characters, reveal_hidden
from moderation.tests.factories import ItemFactory, LabelerFactory, UserFactory

pytestmark = pytest.mark.django_db

RLO = "\u202e"
ZWSP = "\u200b"


def text_of(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


def test_bidi_overrides_and_zero_width_characters_become_visible_tokens_and_text_is_escaped():
    shown = reveal_hidden(f"invoice{RLO}fdp.exe <b>k{ZWSP}ill</b>")
    assert "⟨U+202E⟩" in shown and "⟨U+200B⟩" in shown
    assert RLO not in shown and ZWSP not in shown
    assert "&lt;b&gt;" in shown and "<b>" not in shown
    assert 'title="right-to-left override"' in shown


def test_an_emoji_sequence_keeps_its_joiners():
    family = "\U0001f469\u200d\U0001f469\u200d\U0001f467"
    assert reveal_hidden(family) == family and hidden_characters(family) == 0
    assert hidden_characters(f"a{ZWSP}b{RLO}") == 2


def test_the_item_page_marks_hidden_characters_in_the_text_and_warns(client):
    client.force_login(UserFactory())
    item = ItemFactory(content_text=f"gift card {RLO}gnp.exe and k{ZWSP}ill <script>")
    page = client.get(f"/items/{item.pk}/").content.decode()
    assert RLO not in page and ZWSP not in page
    text = page.split('id="content-text"')[1].split("</div>")[0]
    assert "⟨U+202E⟩" in text and "⟨U+200B⟩" in text and "&lt;script&gt;" in text
    assert 'id="hidden-characters"' in page and "2 invisible or direction-changing" in page
    queue = client.get("/").content.decode()
    assert RLO not in queue and "⟨U+202E⟩" in queue


def test_hidden_characters_in_criteria_are_marked_on_the_item_page(client):
    client.force_login(UserFactory())
    labeler = LabelerFactory(criteria=f"Label threats{RLO} except jokes")
    item = ItemFactory()
    item.labels.create(
        labeler_version=labeler.versions.get(),
        status="done",
        label="1",
        confidence=0.9,
        violation_score=0.9,
        content_hash=item.content_hash,
    )
    page = client.get(f"/items/{item.pk}/").content.decode()
    criteria = page.split('class="criteria-text"')[1].split("</div>")[0]
    assert RLO not in page and "Label threats⟨U+202E⟩ except jokes" in text_of(criteria)
