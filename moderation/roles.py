"""Roles and the starting list of decision reasons, made by `migrate` alone.

Run from a data migration (historical models) and again after every migrate or flush
(post_migrate, apps.py), so that a deployment or a test database that was flushed always
has the reviewer and senior groups with their permissions. It never removes anything an
admin set up, and it adds the starting reasons only while there are none at all.
"""

import contextlib

ROLES = {
    "reviewer": ["review_item"],
    "senior": ["review_item", "review_escalated"],
}

STARTING_REASONS = {
    "remove": ["Hate or harassment", "Violence or threat", "Sexual content", "Spam or scam",
               "Self-harm", "Illegal goods or services", "Other policy violation"],
    "escalate": ["Unsure: needs a senior", "Legal or law-enforcement risk",
                 "Credible threat to life", "Child safety"],
    "approve": ["Does not violate", "Satire or news context", "False positive of the labeler"],
}  # fmt: skip


def roles_and_reasons_ensure(apps) -> None:
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(
            *Permission.objects.filter(content_type__app_label="moderation", codename__in=codenames)
        )
    # The default queue (migration 0019 makes it; a flush removes it): what no rule routes.
    with contextlib.suppress(LookupError):
        apps.get_model("moderation", "Queue").objects.get_or_create(
            is_default=True, defaults={"name": "Default"}
        )
    DecisionReason = apps.get_model("moderation", "DecisionReason")
    if DecisionReason.objects.exists():
        return
    # Migration 0006 runs this with a model from before reasons had keys (0012 gives those
    # theirs); after a flush the model has them, and each reason its digit.
    keyed = any(field.name == "key" for field in DecisionReason._meta.fields)
    DecisionReason.objects.bulk_create(
        DecisionReason(
            action=action, name=name, order=order, **({"key": order + 1} if keyed else {})
        )
        for action, names in STARTING_REASONS.items()
        for order, name in enumerate(names)
    )
