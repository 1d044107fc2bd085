"""Where a request came from, for the audit rows written while it is served: services record
staff actions without a request in hand (audit_record reads it here)."""

from __future__ import annotations

from contextvars import ContextVar

from lib.logins import client_ip

_client_ip: ContextVar[str | None] = ContextVar("audit_client_ip", default=None)


def current_client_ip() -> str | None:
    return _client_ip.get()


class AuditRequestMiddleware:
    """Sets the client address (as axes throttles by it: lib.logins.client_ip) for the
    request, and clears it afterwards so the next request on the thread starts clean."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _client_ip.set(client_ip(request))
        try:
            return self.get_response(request)
        finally:
            _client_ip.reset(token)
