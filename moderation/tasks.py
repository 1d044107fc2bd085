"""Periodic work of the moderation app, run by beat (these tasks send no messages)."""

from __future__ import annotations

from celery import shared_task

from moderation import services


@shared_task(ignore_result=True)
def queue_sla_refresh() -> int:
    """Items cross their source's review SLA as time passes: re-mark them in the queue."""
    return services.items_sla_refresh()
