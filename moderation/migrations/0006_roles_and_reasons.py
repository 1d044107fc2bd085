"""Roles exist after `migrate` alone: the reviewer and senior groups with their permissions,
and a starting list of decision reasons admins can edit."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

from moderation.roles import roles_and_reasons_ensure


def roles_and_reasons(apps, schema_editor):
    # Permissions are normally made after all migrations (post_migrate): make them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    roles_and_reasons_ensure(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("moderation", "0005_reviewer_workspace"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(roles_and_reasons, migrations.RunPython.noop)]
