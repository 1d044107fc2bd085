"""What every reviewer page shows in its frame: roles for the navigation, demo mode, and the
exposure prompt (a wellness signal, never a score)."""

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import SimpleLazyObject

from moderation.models import Decision
from moderation.permissions import can_review, can_review_escalated
from moderation.selectors.reviewers import exposure


def workspace(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    context: dict = {"demo_mode": settings.DEMO_MODE}
    if user is None or not user.is_authenticated or request.path.startswith("/admin/"):
        return context
    if can_review(user):
        context["is_senior"] = can_review_escalated(user)
        # Read when the page shows it, unless the view gives its own (the item page does,
        # from the settings it read already).
        context["exposure"] = SimpleLazyObject(lambda: exposure(user))
        context["undo"] = _undo_offer(request)
    return context


def _undo_offer(request: HttpRequest) -> Decision | None:
    """The reviewer's last decision, for the few seconds the page offers to undo it."""
    offer = request.session.get("undo")
    if not offer:
        return None
    age = timezone.now().timestamp() - offer["at"]
    if age > settings.REVIEW_UNDO_OFFER_SECONDS:
        request.session.pop("undo", None)
        return None
    decision = Decision.objects.filter(pk=offer["decision"], reviewer=request.user).first()
    if decision is not None:
        decision.offer_seconds_left = int(settings.REVIEW_UNDO_OFFER_SECONDS - age) + 1
    return decision
