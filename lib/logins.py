"""Logins: the client address django-axes throttles by, and the admin that asks staff for a
one-time password when OTP_REQUIRED_FOR_STAFF is on."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest
from django_otp.admin import OTPAdminSite


def client_ip(request: HttpRequest) -> str | None:
    """REMOTE_ADDR, or behind TRUSTED_PROXY_COUNT proxies the address the outermost of them
    saw: counted from the right of X-Forwarded-For, since a client can put anything on its
    left. Throttling by a forged address would let an attacker pick a fresh one per try."""
    count = settings.TRUSTED_PROXY_COUNT
    if count > 0:
        forwarded = [
            part.strip()
            for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if part.strip()
        ]
        if len(forwarded) >= count:
            return forwarded[-count]
    return request.META.get("REMOTE_ADDR")


def admin_site_require_otp() -> None:
    """The admin asks staff for a token from one of their OTP devices (TOTP or static)
    besides the password; a staff user with no device cannot enter it."""
    admin.site.__class__ = OTPAdminSite
