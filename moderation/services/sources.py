"""Sources: create one, rotate its signing secret, its callback secret, the secrets valid now."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from moderation.models import (
    Source,
    hash_token,
    new_api_token,
    new_webhook_secret,
)


def source_create(*, source: Source, labelers) -> tuple[Source, str, str]:
    """Save a new source routed to `labelers`, with a signing secret and an API token of its
    own. `source` is unsaved, with its name, slug and any settings filled in (the admin's form
    fills them all; create_source only the name and slug).

    Returns the source, its signing secret and its API token; the token is not stored in
    clear, so this is the only time it can be shown.
    """
    token = new_api_token()
    source.webhook_secret = new_webhook_secret()
    source.api_token_hash = hash_token(token)
    with transaction.atomic():
        source.save()
        source.labelers.set(labelers)
    return source, source.webhook_secret, token


def source_rotate_secret(*, source: Source, grace: timedelta) -> str:
    """New signing secret; the old one stays valid for `grace` so products can switch over."""
    secret = new_webhook_secret()
    source.previous_webhook_secret = source.webhook_secret
    source.previous_secret_expires_at = timezone.now() + grace
    source.webhook_secret = secret
    source.save(
        update_fields=["webhook_secret", "previous_webhook_secret", "previous_secret_expires_at"]
    )
    return secret


def source_set_callback_secret(*, source: Source, separate: bool) -> str:
    """Sign callbacks with a new secret of their own (returned, shown once), or again with
    the source's signing secret (`separate=False`)."""
    source.callback_secret = new_webhook_secret() if separate else ""
    source.save(update_fields=["callback_secret"])
    return source.callback_secret or source.webhook_secret


def source_valid_secrets(*, source: Source) -> list[str]:
    valid = [source.webhook_secret]
    if source.previous_webhook_secret and (
        source.previous_secret_expires_at and source.previous_secret_expires_at > timezone.now()
    ):
        valid.append(source.previous_webhook_secret)
    return valid
