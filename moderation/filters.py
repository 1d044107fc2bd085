"""The review queue's filters, parsed from a query string and written back into one, so
that they survive "next", decisions and pagination."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from datetime import date
from urllib.parse import urlencode

from django.http import QueryDict

STATUSES = {
    "undecided": "Undecided",
    "failed": "Labeling failed",
    "escalated": "Escalated",
    "mine": "Decided by me",
}


def int_or_none(value: str | None) -> int | None:
    """A query parameter as an int; None when missing or not a number."""
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _score(value: str | None) -> float | None:
    try:
        score = float(value) if value else None
    except ValueError:
        return None
    return score if score is not None and 0.0 <= score <= 1.0 else None


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


@dataclass(frozen=True)
class QueueFilter:
    source: int | None = None
    labeler: int | None = None
    score_min: float | None = None
    score_max: float | None = None
    received_from: date | None = None  # inclusive, UTC day
    received_to: date | None = None  # inclusive, UTC day
    media: str = ""  # "", "image", "video", "text" (no media)
    status: str = "undecided"
    q: str = ""  # search over external_id and text

    @classmethod
    def from_query(cls, query: QueryDict) -> QueueFilter:
        """Unknown or malformed values are dropped, never an error: a bad bookmark still
        shows a queue."""
        media = query.get("media", "")
        status = query.get("status", "undecided")
        return cls(
            source=int_or_none(query.get("source")),
            labeler=int_or_none(query.get("labeler")),
            score_min=_score(query.get("score_min")),
            score_max=_score(query.get("score_max")),
            received_from=_date(query.get("received_from")),
            received_to=_date(query.get("received_to")),
            media=media if media in ("image", "video", "text") else "",
            status=status if status in STATUSES else "undecided",
            q=query.get("q", "").strip()[:200],
        )

    def with_status(self, status: str) -> QueueFilter:
        return replace(self, status=status)

    def params(self) -> dict[str, str]:
        """The non-default values, as query parameters."""
        defaults = QueueFilter()
        return {
            f.name: str(value)
            for f in fields(self)
            if (value := getattr(self, f.name)) != getattr(defaults, f.name) and value is not None
        }

    def querystring(self) -> str:
        """`?a=b&...` or "" when nothing is filtered."""
        params = self.params()
        return "?" + urlencode(params) if params else ""

    def as_dict(self) -> dict:
        return asdict(self)
