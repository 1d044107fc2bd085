"""A reviewer's own pages: their decisions, their media settings and breaks, their
password."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.views import PasswordChangeView
from django.contrib.messages.views import SuccessMessageMixin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views.decorators.http import require_GET, require_http_methods

from moderation.forms import ReviewerSettingsForm
from moderation.permissions import (
    reviewer_required,
)
from moderation.selectors.decisions import (
    decisions_by,
)
from moderation.selectors.reviewers import exposure, reviewer_settings
from moderation.services.reviewers import (
    reviewer_break_taken,
    reviewer_settings_save,
)


@require_GET
@reviewer_required
def my_decisions(request: HttpRequest) -> HttpResponse:
    decisions, following = decisions_by(reviewer=request.user, before=request.GET.get("before"))
    return render(
        request,
        "moderation/my_decisions.html",
        {"decisions": decisions, "following": following},
    )


@require_http_methods(["GET", "POST"])
@reviewer_required
def my_settings(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        if "break" in request.POST:
            reviewer_break_taken(reviewer=request.user)
            messages.success(request, "Break taken: your exposure count starts again.")
            return redirect("queue")
        form = ReviewerSettingsForm(request.POST)
        if form.is_valid():
            reviewer_settings_save(reviewer=request.user, **form.cleaned_data)
            messages.success(request, "Settings saved.")
            return redirect("my_settings")
    else:
        current = reviewer_settings(request.user)
        form = ReviewerSettingsForm(
            initial={name: getattr(current, name) for name in ReviewerSettingsForm.base_fields}
        )
    return render(
        request,
        "moderation/settings.html",
        {"form": form, "exposure": exposure(request.user)},
    )


class _PasswordChange(SuccessMessageMixin, PasswordChangeView):
    """Django's password change (old password, new one twice, the validators; the session
    stays logged in), in the site's frame, back to the settings page with a message."""

    template_name = "moderation/password_change.html"
    success_url = reverse_lazy("my_settings")
    success_message = "Password changed."


my_password = _PasswordChange.as_view()
