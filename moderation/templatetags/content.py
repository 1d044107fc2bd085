"""Filters for showing submitted text to reviewers: characters that hide or reorder text
(bidi overrides and isolates, zero-width characters) made visible, everything escaped."""

from __future__ import annotations

import re
import unicodedata

from django import template
from django.utils.html import conditional_escape, format_html, format_html_join
from django.utils.safestring import SafeString

register = template.Library()

# Characters that change how text reads without being seen: a right-to-left override shows
# "exe.txt" for "txt.exe", a zero-width space splits a banned word so a reader never notices.
SPOOFING = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u2069\u3164\ufeff\uffa0]"
)
# A zero-width joiner inside an emoji sequence (👩‍👩‍👧) is how emoji are written, not a trick.
EMOJI_AROUND = re.compile("[\u2600-\u27bf\ufe0f\U0001f000-\U0001faff]")


def _name(char: str) -> str:
    return unicodedata.name(char, "format character").lower()


def _is_emoji_join(text: str, index: int) -> bool:
    return (
        text[index] == "\u200d"
        and index > 0
        and index + 1 < len(text)
        and bool(EMOJI_AROUND.match(text[index - 1]))
        and bool(EMOJI_AROUND.match(text[index + 1]))
    )


def hidden_characters(text: str | None) -> int:
    """How many hiding or reordering characters the text holds (emoji joins left out)."""
    if not text:
        return 0
    return sum(1 for m in SPOOFING.finditer(text) if not _is_emoji_join(text, m.start()))


@register.filter(is_safe=True)
def reveal_hidden(text: str | None) -> SafeString:
    """The text escaped, with each hiding or reordering character replaced by a visible
    token such as ⟨U+202E⟩ naming it, so it neither reorders nor hides anything on the page."""
    if not text:
        return SafeString("")
    parts: list[SafeString] = []
    last = 0
    for match in SPOOFING.finditer(text):
        if _is_emoji_join(text, match.start()):
            continue
        char = match.group()
        parts.append(conditional_escape(text[last : match.start()]))
        parts.append(
            format_html(
                '<span class="hidden-char" title="{}">⟨U+{}⟩</span>',
                _name(char),
                f"{ord(char):04X}",
            )
        )
        last = match.end()
    parts.append(conditional_escape(text[last:]))
    return format_html_join("", "{}", ((part,) for part in parts))  # each piece escaped


@register.filter
def hidden_count(text: str | None) -> int:
    return hidden_characters(text)
