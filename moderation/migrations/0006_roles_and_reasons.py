"""Roles exist after `migrate` alone: the reviewer and senior groups with their permissions,
and a starting list of decision reasons admins can edit."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLES = {
    "reviewer": ["review_item"],
    "senior": ["review_item", "review_escalated"],
}

REASONS = {
    "remove": ["Hate or harassment", "Violence or threat", "Sexual content", "Spam or scam",
               "Self-harm", "Illegal goods or services", "Other policy violation"],
    "escalate": ["Unsure: needs a senior", "Legal or law-enforcement risk",
                 "Credible threat to life", "Child safety"],
    "approve": ["Does not violate", "Satire or news context", "False positive of the labeler"],
}  # fmt: skip


def roles_and_reasons(apps, schema_editor):
    # Permissions are normally made after all migrations (post_migrate): make them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(
            *Permission.objects.filter(content_type__app_label="moderation", codename__in=codenames)
        )
    DecisionReason = apps.get_model("moderation", "DecisionReason")
    for action, names in REASONS.items():
        for order, name in enumerate(names):
            DecisionReason.objects.get_or_create(action=action, name=name, defaults={"order": order})


class Migration(migrations.Migration):
    dependencies = [
        ("moderation", "0005_reviewer_workspace"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(roles_and_reasons, migrations.RunPython.noop)]
