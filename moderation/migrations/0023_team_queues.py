"""Team queues and routing rules: queues, rules and their history, the item's queue and
language, the reviewer's languages; the default queue. The item's new indexes are built
concurrently (intake and review go on meanwhile)."""

import django.core.validators
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from moderation.migration_operations import AddIndexConcurrently


def default_queue(apps, schema_editor):
    """The default queue: what no rule routes, reviewed by every reviewer (as before)."""
    apps.get_model("moderation", "Queue").objects.get_or_create(
        is_default=True, defaults={"name": "Default"}
    )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('auth', '0012_alter_user_first_name_max_length'),
        ('moderation', '0022_retention_erasure'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='RoutingChange',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('kind', models.CharField(max_length=20)),
                ('rule_name', models.CharField(blank=True, max_length=100)),
                ('before', models.JSONField(blank=True, null=True)),
                ('after', models.JSONField(blank=True, null=True)),
            ],
            options={
                'ordering': ['-id'],
            },
        ),
        migrations.CreateModel(
            name='RoutingRule',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=100)),
                ('position', models.PositiveIntegerField(default=0)),
                ('enabled', models.BooleanField(default=True)),
                ('conditions', models.JSONField(default=dict)),
                ('updated_at', models.DateTimeField(auto_now=True)),
            ],
            options={
                'ordering': ['position', 'id'],
            },
        ),
        migrations.AddField(
            model_name='item',
            name='language',
            field=models.CharField(blank=True, max_length=8),
        ),
        migrations.AddField(
            model_name='reviewersettings',
            name='languages',
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.CreateModel(
            name='Queue',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=100, unique=True)),
                ('is_default', models.BooleanField(default=False)),
                ('sla_minutes', models.PositiveIntegerField(blank=True, null=True)),
                ('allowed_actions', models.JSONField(blank=True, default=list)),
                ('always_grayscale', models.BooleanField(default=False)),
                ('always_blur', models.BooleanField(default=False)),
                ('exposure_budget_reveals', models.PositiveIntegerField(blank=True, null=True)),
                ('audit_share', models.FloatField(blank=True, null=True, validators=[django.core.validators.MinValueValidator(0.0), django.core.validators.MaxValueValidator(1.0)])),
                ('golden_share', models.FloatField(blank=True, null=True, validators=[django.core.validators.MinValueValidator(0.0), django.core.validators.MaxValueValidator(1.0)])),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('team', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='auth.group')),
            ],
            options={
                'ordering': ['-is_default', 'name'],
            },
        ),
        migrations.AddField(
            model_name='item',
            name='queue',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='moderation.queue'),
        ),
        AddIndexConcurrently(
            model_name='item',
            index=models.Index(condition=models.Q(('status__in', ('flagged', 'failed', 'unrouted', 'audit', 'rereview', 'reported'))), fields=['queue', 'queue_key', 'id'], name='item_queue_team_idx'),
        ),
        AddIndexConcurrently(
            model_name='item',
            index=models.Index(condition=models.Q(('status__in', ('flagged', 'failed', 'unrouted', 'audit', 'rereview', 'reported'))), fields=['queue', 'language', 'queue_key', 'id'], name='item_queue_language_idx'),
        ),
        AddIndexConcurrently(
            model_name='item',
            index=models.Index(condition=models.Q(('status__in', ('flagged', 'failed', 'unrouted', 'audit', 'rereview', 'reported'))), fields=['queue', 'sla_breached', 'waiting_since'], name='item_queue_sla_idx'),
        ),
        migrations.AddField(
            model_name='routingchange',
            name='actor',
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddField(
            model_name='routingrule',
            name='queue',
            field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='rules', to='moderation.queue'),
        ),
        migrations.AddField(
            model_name='routingchange',
            name='rule',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='changes', to='moderation.routingrule'),
        ),
        migrations.AddConstraint(
            model_name='queue',
            constraint=models.UniqueConstraint(condition=models.Q(('is_default', True)), fields=('is_default',), name='queue_one_default'),
        ),
        migrations.RunPython(default_queue, migrations.RunPython.noop),
    ]
