"""App config: keeps the per-process source cache in step with saves, the roles in place
after every migrate or flush."""

from django.apps import AppConfig
from django.apps import apps as global_apps

from moderation.roles import roles_and_reasons_ensure


def _roles_after_migrate(sender, apps=global_apps, **kwargs):
    # A flush (as tests do between transactional tests) sends no `apps`: the live models.
    roles_and_reasons_ensure(apps)


class ModerationConfig(AppConfig):
    name = "moderation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.db.models.signals import post_delete, post_migrate, post_save

        from moderation.models import Source
        from moderation.selectors.sources import source_cache

        # Intake caches sources per process for a few seconds; a change made in this
        # process is seen at once.
        for signal in (post_save, post_delete):
            signal.connect(source_cache.clear, sender=Source, weak=False)
        post_migrate.connect(_roles_after_migrate, sender=self)
