from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit log"

    def ready(self):
        # Logins and failed logins reach the log through Django's auth signals (axes sends
        # user_login_failed too): the login views are Django's and axes', not ours.
        from audit import signals  # noqa: F401
