"""App config: keeps the per-process source cache in step with saves."""

from django.apps import AppConfig


class ModerationConfig(AppConfig):
    name = "moderation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from moderation.models import Source
        from moderation.selectors import source_cache

        # Intake caches sources per process for a few seconds; a change made in this
        # process is seen at once.
        for signal in (post_save, post_delete):
            signal.connect(source_cache.clear, sender=Source, weak=False)
