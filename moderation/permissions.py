"""Who may do what on the reviewer pages: the role checks, the sources a reviewer may
review, and the decorators views use for them."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied

from moderation.models import ReviewerSettings


def can_review(user) -> bool:
    """Reviewers (the `review_item` permission, e.g. the reviewer group) and admins."""
    return user.is_authenticated and (user.is_staff or user.has_perm("moderation.review_item"))


def can_review_escalated(user) -> bool:
    """Senior reviewers (`review_escalated`, e.g. the senior group) and admins."""
    return user.is_authenticated and (user.is_staff or user.has_perm("moderation.review_escalated"))


def reviewer_source_ids(user) -> frozenset[int] | None:
    """The sources a reviewer may review; None means all (admins, and reviewers with no
    source restriction)."""
    if user.is_staff:
        return None
    ids = frozenset(
        ReviewerSettings.sources.through.objects.filter(
            reviewersettings__user_id=user.pk
        ).values_list("source_id", flat=True)
    )
    return ids or None


def reviewer_required(view):
    """Reviewers (the review_item permission: groups reviewer and senior) and admins."""

    @wraps(view)
    @login_required
    def wrapped(request, *args, **kwargs):
        if not can_review(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapped


def senior_required(view):
    """Senior reviewers (review_escalated: the senior group) and admins."""

    @wraps(view)
    @reviewer_required
    def wrapped(request, *args, **kwargs):
        if not can_review_escalated(request.user):
            raise PermissionDenied("Escalated items are for senior reviewers.")
        return view(request, *args, **kwargs)

    return wrapped


def staff_required(view):
    """Admins (staff): the /manage/ pages."""

    @wraps(view)
    @login_required
    def wrapped(request, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied("These pages are for admins.")
        return view(request, *args, **kwargs)

    return wrapped
