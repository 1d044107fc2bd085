"""Machine endpoints (the signed webhook) skip the middleware that serves people.

A webhook proves itself with a signature over each request: it has no session, no user, no
CSRF token, no login to throttle and no static file to find. Passing it through sessions,
CSRF, authentication, the second factor, messages, login throttling (axes) and WhiteNoise
cost intake CPU on every request for nothing (bench/intake.py).

MachineEndpointMiddleware sits after the middleware every answer needs (health probes, log
context, SecurityMiddleware's SSL redirect and headers, frame options, CSP). A request under
one of MACHINE_ENDPOINT_PATHS whose URL resolves to a view marked @machine_endpoint is
answered by that view directly; anything else (a page, an unknown URL, a missing slash) goes
on through the whole stack as before. What CommonMiddleware would have done for the
webhook is done here: the Host check (ALLOWED_HOSTS; a bad Host is answered 400) and the
Content-Length header.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import ResolverMatch, URLResolver, get_resolver, get_urlconf
from django.urls.exceptions import Resolver404

View = Callable[..., HttpResponse]


def machine_endpoint(view: View) -> View:
    """Mark a view that needs no session, user, CSRF token or login throttling (it must
    authenticate each request itself, and be csrf_exempt)."""
    view.machine_endpoint = True  # type: ignore[attr-defined]
    return view


@lru_cache(maxsize=512)
def _resolve(resolver: URLResolver, path: str) -> ResolverMatch:
    """The URL's match, once per path (and URLconf): the webhook's path sits after most of
    the site's patterns, and trying them all cost each webhook ~0.05 ms of CPU. A path that
    matches nothing raises each time (not kept), so random paths cannot fill it with misses;
    at most 512 are kept (a product's few sources' webhooks)."""
    return resolver.resolve(path)


class MachineEndpointMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        self.paths = tuple(settings.MACHINE_ENDPOINT_PATHS)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not self.paths or not request.path_info.startswith(self.paths):
            return self.get_response(request)
        try:
            match = _resolve(get_resolver(get_urlconf()), request.path_info)
        except Resolver404:
            return self.get_response(request)
        if not getattr(match.func, "machine_endpoint", False):
            return self.get_response(request)
        # As CommonMiddleware: an unknown Host raises DisallowedHost, answered 400.
        request.get_host()
        request.resolver_match = match
        response: Any = match.func(request, *match.args, **match.kwargs)
        if not response.streaming and not response.has_header("Content-Length"):
            response.headers["Content-Length"] = str(len(response.content))
        return response
