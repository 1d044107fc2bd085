"""Error pages in the site's frame (the base template with its navigation): each says what
went wrong and where to go from here. Wired in config/urls.py (handler400 ... handler500)
and as CSRF_FAILURE_VIEW."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template import loader

logger = logging.getLogger(__name__)

# Django's own messages for these exceptions say nothing a reviewer can act on.
_GENERIC = {"", "None"}


def _page(request: HttpRequest, *, status: int, title: str, why: str) -> HttpResponse:
    return render(
        request, "errors/error.html", {"status": status, "title": title, "why": why}, status=status
    )


def _said(exception, default: str) -> str:
    text = str(exception) if exception is not None else ""
    # A 404 raised by get_object_or_404 names the model's query: not for reviewers.
    if text in _GENERIC or "matches the given query" in text or text.startswith("No "):
        return default
    return text


def bad_request(request: HttpRequest, exception=None) -> HttpResponse:
    return _page(
        request,
        status=400,
        title="Bad request",
        why="The address or the form sent could not be read. Go back and try again, or "
        "start from the queue.",
    )


def permission_denied(request: HttpRequest, exception=None) -> HttpResponse:
    return _page(
        request,
        status=403,
        title="Not for your role",
        why=_said(exception, "Your account may not open this page."),
    )


def page_not_found(request: HttpRequest, exception=None) -> HttpResponse:
    return _page(
        request,
        status=404,
        title="Not found",
        why="Nothing is here: the address is wrong, or the item is in a source you do not review.",
    )


def server_error(request: HttpRequest) -> HttpResponse:
    """Rendered with the frame where that still works; a plain page when rendering itself is
    what failed (the database down, a template broken)."""
    why = "Something failed on our side; it is logged. Try again in a moment."
    try:
        return _page(request, status=500, title="Server error", why=why)
    except Exception:
        logger.exception("the 500 page could not be rendered with its frame")
        html = loader.get_template("errors/500_plain.html").render({"why": why})
        return HttpResponse(html, status=500)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A form sent without its security token: a page open from before a log-in or log-out,
    or cookies blocked."""
    return _page(
        request,
        status=403,
        title="The form has expired",
        why="This form was sent from a page opened before you logged in or out (or cookies "
        "are blocked for this site), so it was not accepted and nothing changed. Reload the "
        "page and send it again.",
    )
