"""The language of an item's text, detected by the dispatch when it takes the received item
(before labels, banks and routing; never in the webhook's request), with py3langid: a naive
Bayes model over byte n-grams, shipped in its wheel; see pyproject.toml for why this one.
Reviewers list the languages they read and "next" serves those first; routing rules may
match on it."""

from __future__ import annotations

import threading

import py3langid

# Enough text to tell (the model's accuracy no longer grows past a few sentences); a long
# post costs what its first part costs.
SAMPLE_CHARS = 600
_lock = threading.Lock()
_identifier: py3langid.langid.LanguageIdentifier | None = None


def _model() -> py3langid.langid.LanguageIdentifier:
    """Loaded once per process (~1.5 s, 4.5 MB), on the first text that needs it."""
    global _identifier
    if _identifier is None:
        with _lock:
            if _identifier is None:
                _identifier = py3langid.langid.LanguageIdentifier.from_model_file(
                    py3langid.langid.MODEL_FILE
                )
    return _identifier


def detect_language(text: str) -> str:
    """ISO 639-1 code of the text's language, or "" when it has no letters to judge by."""
    sample = text[:SAMPLE_CHARS]
    if sum(char.isalpha() for char in sample) < 3:
        return ""
    language, _ = _model().classify(sample)
    return str(language)[:8]
