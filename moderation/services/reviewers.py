"""A reviewer's own records: media reveals (exposure), breaks, media settings."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from moderation.models import (
    Item,
    MediaReveal,
    ReviewerSettings,
    shift_start,
)


@transaction.atomic
def media_reveal_record(*, item: Item, reviewer) -> None:
    """Count a media reveal for the reviewer's exposure (once per item and shift)."""
    settings_row = ReviewerSettings.objects.filter(user_id=reviewer.pk).first()
    since = shift_start(settings_row)
    if not MediaReveal.objects.filter(
        reviewer=reviewer, item=item, revealed_at__gte=since
    ).exists():
        MediaReveal.objects.create(reviewer=reviewer, item=item)
    audit_record(action="media.reveal", actor=reviewer, obj=item)


def reviewer_break_taken(*, reviewer) -> None:
    """The reviewer took a break: a new shift starts for the exposure budget."""
    ReviewerSettings.objects.update_or_create(
        user=reviewer, defaults={"shift_started_at": timezone.now()}
    )


def reviewer_settings_save(*, reviewer, **values) -> ReviewerSettings:
    """Save the media settings a reviewer chose (not their source restriction: admins set
    that)."""
    allowed = {
        "blur_media",
        "grayscale_media",
        "autoplay_video",
        "mute_video",
        "exposure_budget_reveals",
        "exposure_budget_minutes",
        "languages",
    }
    unknown = set(values) - allowed
    if unknown:
        raise ValueError(f"not a reviewer setting: {sorted(unknown)}")
    row, _ = ReviewerSettings.objects.update_or_create(user=reviewer, defaults=values)
    return row
