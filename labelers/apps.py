"""App config: keeps the per-process routing cache in step with saves."""

from django.apps import AppConfig


class LabelersConfig(AppConfig):
    name = "labelers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.db.models.signals import m2m_changed, post_delete, post_save

        from labelers.models import Labeler, LabelerVersion
        from labelers.routing import routing_cache
        from moderation.models import Source

        # The dispatch caches each source's routing per process for a few seconds; a change
        # made in this process is seen at once.
        for model in (Source, Labeler, LabelerVersion):
            for signal in (post_save, post_delete):
                signal.connect(routing_cache.clear, sender=model, weak=False)
        m2m_changed.connect(routing_cache.clear, sender=Source.labelers.through, weak=False)
