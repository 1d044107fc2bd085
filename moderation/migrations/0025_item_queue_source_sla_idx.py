"""The SLA header of a reviewer served only some team queues counts only those queues' items:
an index per (queue, source, SLA state, waiting since), built concurrently."""

from django.db import migrations, models

from moderation.migration_operations import AddIndexConcurrently


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("moderation", "0024_bank_pdq_rewrites"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="item",
            index=models.Index(
                condition=models.Q(
                    (
                        "status__in",
                        ("flagged", "failed", "unrouted", "audit", "rereview", "reported"),
                    )
                ),
                fields=["queue", "source", "sla_breached", "waiting_since"],
                name="item_queue_source_sla_idx",
            ),
        ),
    ]
