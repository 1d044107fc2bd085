"""The review queue's filters, parsed from a query string and written back into one, so
that they survive "next", decisions and pagination."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from datetime import date
from urllib.parse import urlencode

from django.http import QueryDict

from moderation.models import REPORT_REASON_MAX

STATUSES = {
    "undecided": "Undecided",
    "failed": "Labeling failed",
    "escalated": "Escalated",
    "mine": "Decided by me",
}


# The longest search the queue takes: an external id is at most 255 characters, and a phrase
# of text rarely more than a sentence. The form stops there; a longer one in a URL is refused
# with a message (gunicorn.conf.py lets a URL this long and more reach the app).
SEARCH_MAX_LENGTH = 255


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
    author: int | None = None  # an Author's id: one account's items
    labeler: int | None = None
    score_min: float | None = None
    score_max: float | None = None
    received_from: date | None = None  # inclusive, UTC day
    received_to: date | None = None  # inclusive, UTC day
    media: str = ""  # "", "image", "video", "text" (no media)
    status: str = "undecided"
    q: str = ""  # search over external_id and text
    reported: bool = False  # only items with open reports
    report_reason: str = ""  # only items reported for this reason
    queue: int | None = None  # a team queue's id (its tab); None: all the reviewer's queues

    @classmethod
    def from_query(cls, query: QueryDict) -> QueueFilter:
        """Unknown or malformed values are dropped, never an error: a bad bookmark still
        shows a queue."""
        media = query.get("media", "")
        status = query.get("status", "undecided")
        return cls(
            source=int_or_none(query.get("source")),
            author=int_or_none(query.get("author")),
            labeler=int_or_none(query.get("labeler")),
            score_min=_score(query.get("score_min")),
            score_max=_score(query.get("score_max")),
            received_from=_date(query.get("received_from")),
            received_to=_date(query.get("received_to")),
            media=media if media in ("image", "video", "text") else "",
            status=status if status in STATUSES else "undecided",
            q=query.get("q", "").strip()[:SEARCH_MAX_LENGTH],
            reported=query.get("reported", "") in ("1", "on", "true", "True"),
            report_reason=query.get("report_reason", "").strip()[:REPORT_REASON_MAX],
            queue=int_or_none(query.get("queue")),
        )

    @staticmethod
    def problems(query: QueryDict) -> list[str]:
        """What from_query had to drop, said plainly for the page: a filter that is silently
        ignored shows a queue the reviewer did not ask for."""
        found = []
        for name, label in (("score_min", "Score from"), ("score_max", "Score to")):
            value = query.get(name, "")
            if value and _score(value) is None:
                found.append(f"{label} must be a number from 0 to 1; “{value[:20]}” is not.")
        for name, label in (("received_from", "Received from"), ("received_to", "Received to")):
            value = query.get(name, "")
            if value and _date(value) is None:
                found.append(f"{label} must be a date (YYYY-MM-DD); “{value[:20]}” is not.")
        for name, label in (("source", "Source"), ("labeler", "Labeler"), ("queue", "Queue")):
            value = query.get(name, "")
            if value and int_or_none(value) is None:
                found.append(f"{label} “{value[:20]}” is not one of the list's choices.")
        if query.get("media", "") not in ("", "image", "video", "text"):
            found.append("Media must be image, video or text only.")
        if query.get("status", "undecided") not in STATUSES:
            found.append("That status is not one of the queue's tabs.")
        length = len(query.get("q", "").strip())
        if length > SEARCH_MAX_LENGTH:
            found.append(
                f"The search is {length:,} characters long; at most {SEARCH_MAX_LENGTH} are "
                "searched (an external id, or a few words of the text)."
            )
        return found

    def with_status(self, status: str) -> QueueFilter:
        return replace(self, status=status)

    def params(self) -> dict[str, str]:
        """The non-default values, as query parameters."""
        defaults = QueueFilter()
        return {
            f.name: "1" if value is True else str(value)
            for f in fields(self)
            if (value := getattr(self, f.name)) != getattr(defaults, f.name) and value is not None
        }

    def querystring(self) -> str:
        """`?a=b&...` or "" when nothing is filtered."""
        params = self.params()
        return "?" + urlencode(params) if params else ""

    def as_dict(self) -> dict:
        return asdict(self)
