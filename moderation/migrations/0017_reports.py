"""Reports (a second intake): the report rows, the item's report score, the decision's
report ids, and the queue's indexes taking the "reported" status."""

import django.core.validators
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from moderation.migration_operations import AddIndexConcurrently


class Migration(migrations.Migration):
    # The queue's indexes take the new status: the new ones are built concurrently (intake
    # and review go on meanwhile) before the old ones are dropped.
    atomic = False

    dependencies = [
        ('moderation', '0016_appeals'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Report',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('report_id', models.CharField(max_length=255)),
                ('webhook_id', models.CharField(max_length=255)),
                ('reason', models.CharField(max_length=100)),
                ('reporter_id', models.CharField(blank=True, max_length=255)),
                ('comment', models.TextField(blank=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
            ],
            options={
                'ordering': ['created_at', 'id'],
            },
        ),
        AddIndexConcurrently(
            model_name='item',
            index=models.Index(condition=models.Q(('status__in', ('flagged', 'failed', 'unrouted', 'audit', 'rereview', 'reported'))), fields=['queue_key', 'id'], name='item_queue_idx'),
        ),
        AddIndexConcurrently(
            model_name='item',
            index=models.Index(condition=models.Q(('status__in', ('flagged', 'failed', 'unrouted', 'audit', 'rereview', 'reported'))), fields=['source', 'queue_key', 'id'], name='item_queue_source_idx'),
        ),
        AddIndexConcurrently(
            model_name='item',
            index=models.Index(condition=models.Q(('status__in', ('flagged', 'failed', 'unrouted', 'audit', 'rereview', 'reported'))), fields=['source', 'sla_breached', 'waiting_since'], name='item_waiting_sla_idx'),
        ),
        migrations.RemoveIndex(
            model_name='item',
            name='item_queue_key_idx',
        ),
        migrations.RemoveIndex(
            model_name='item',
            name='item_queue_key_source_idx',
        ),
        migrations.RemoveIndex(
            model_name='item',
            name='item_waiting_idx',
        ),
        migrations.AddField(
            model_name='decision',
            name='report_ids',
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name='item',
            name='report_score',
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='source',
            name='report_return_reporters',
            field=models.PositiveIntegerField(default=3, help_text='New distinct reporters that send an approved item back to review.', validators=[django.core.validators.MinValueValidator(1)]),
        ),
        migrations.AlterField(
            model_name='item',
            name='status',
            field=models.CharField(choices=[('received', 'Received'), ('labeling', 'Labeling'), ('labeled', 'Labeled (not flagged)'), ('flagged', 'Flagged (in queue)'), ('failed', 'Labeling failed (in queue)'), ('unrouted', 'No labeler routed (in queue)'), ('audit', 'Audit sample (in queue)'), ('rereview', 'Sent for re-review (in queue)'), ('reported', 'Reported (in queue)'), ('escalated', 'Escalated'), ('decided', 'Decided')], default='received', max_length=20),
        ),
        migrations.AlterField(
            model_name='itemrevision',
            name='status',
            field=models.CharField(choices=[('received', 'Received'), ('labeling', 'Labeling'), ('labeled', 'Labeled (not flagged)'), ('flagged', 'Flagged (in queue)'), ('failed', 'Labeling failed (in queue)'), ('unrouted', 'No labeler routed (in queue)'), ('audit', 'Audit sample (in queue)'), ('rereview', 'Sent for re-review (in queue)'), ('reported', 'Reported (in queue)'), ('escalated', 'Escalated'), ('decided', 'Decided')], max_length=20),
        ),
        migrations.AddField(
            model_name='report',
            name='decision',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='reports', to='moderation.decision'),
        ),
        migrations.AddField(
            model_name='report',
            name='item',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='reports', to='moderation.item'),
        ),
        migrations.AddField(
            model_name='report',
            name='source',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='moderation.source'),
        ),
        migrations.AddIndex(
            model_name='report',
            index=models.Index(fields=['item', 'reason'], name='report_item_reason_idx'),
        ),
        migrations.AddIndex(
            model_name='report',
            index=models.Index(condition=models.Q(('reporter_id', ''), _negated=True), fields=['source', 'reporter_id'], name='report_reporter_idx'),
        ),
        migrations.AddConstraint(
            model_name='report',
            constraint=models.UniqueConstraint(fields=('source', 'report_id'), name='report_id_unique'),
        ),
    ]
