"""Logins, logouts and failed logins into the audit log (Django's auth signals; axes sends
user_login_failed for the attempts it refuses too). A failed login keeps the name tried,
never the password (Django has already masked it in `credentials`, and it is not read)."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from audit.services import audit_record


@receiver(user_logged_in, dispatch_uid="audit_login")
def _logged_in(sender, request, user, **kwargs):
    audit_record(action="auth.login", actor=user, obj=user, request=request)


@receiver(user_logged_out, dispatch_uid="audit_logout")
def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        audit_record(action="auth.logout", actor=user, obj=user, request=request)


@receiver(user_login_failed, dispatch_uid="audit_login_failed")
def _login_failed(sender, credentials, request=None, **kwargs):
    tried = str(credentials.get("username", "") or "")[:150]
    audit_record(
        action="auth.login_failed",
        actor=None,
        actor_username=tried,
        object_type="user",
        request=request,
    )
