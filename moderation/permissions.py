"""Who may do what on the reviewer pages: the role checks, the sources a reviewer may
review, and the decorators views use for them."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied

from moderation.models import ReviewerSettings
from moderation.routing import queues_teams

# Item.queue values a reviewer may see: a queue's id, None for the default queue; the whole
# value None means every queue (admins, seniors, and everyone while no queue has a team).
QueueScope = frozenset[int | None] | None


def can_review(user) -> bool:
    """Reviewers (the `review_item` permission, e.g. the reviewer group) and admins."""
    return user.is_authenticated and (user.is_staff or user.has_perm("moderation.review_item"))


def can_review_escalated(user) -> bool:
    """Senior reviewers (`review_escalated`, e.g. the senior group) and admins."""
    return user.is_authenticated and (user.is_staff or user.has_perm("moderation.review_escalated"))


def reviewer_source_ids(user) -> frozenset[int] | None:
    """The sources a reviewer may review; None means all (admins, and reviewers with no
    source restriction).

    Read once per user object, as Django keeps a user's permissions (`_perm_cache`): a page
    asks for it several times (the queue page four), and request.user lives for one request.
    An admin changes a reviewer's sources in a request of their own."""
    if user.is_staff:
        return None
    try:
        return user._reviewer_source_ids
    except AttributeError:
        pass
    ids = frozenset(
        ReviewerSettings.sources.through.objects.filter(
            reviewersettings__user_id=user.pk
        ).values_list("source_id", flat=True)
    )
    user._reviewer_source_ids = ids or None
    return user._reviewer_source_ids


def queue_value(queue_id: int) -> int | None:
    """The Item.queue value of a queue: None for the default queue."""
    for pk, _, is_default in queues_teams():
        if pk == queue_id:
            return None if is_default else pk
    return queue_id


def reviewer_queue_ids(user) -> QueueScope:
    """The queues a reviewer is served (as Item.queue values): those of their teams and
    those with no team; None: all of them (admins, seniors, or no queue has a team)."""
    if not user.is_authenticated:
        return frozenset()
    if user.is_staff or user.has_perm("moderation.review_escalated"):
        return None
    queues = queues_teams()
    if all(team_id is None for _, team_id, _ in queues):
        return None
    groups = getattr(user, "_queue_groups", None)
    if groups is None:
        groups = frozenset(user.groups.values_list("id", flat=True))
        user._queue_groups = groups  # once per request
    return frozenset(
        None if is_default else pk
        for pk, team_id, is_default in queues
        if team_id is None or team_id in groups
    )


def may_see_item(user, item) -> bool:
    """The server's check on every item view and action: the item's source and queue are
    the reviewer's."""
    sources = reviewer_source_ids(user)
    if sources is not None and item.source_id not in sources:
        return False
    queues = reviewer_queue_ids(user)
    return queues is None or item.queue_id in queues


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
