"""Sources as intake and the item API find them (by slug, cached per process; by API token)."""

from __future__ import annotations

from lib.cache import TTLCache
from moderation.models import (
    Source,
    hash_token,
)

# Every webhook needs its source: cached per process (an unknown slug too, so a flood of
# 404s costs no queries); saves clear it (apps.py).
source_cache: TTLCache[Source | None] = TTLCache(seconds=2.0)


def source_for_intake(slug: str) -> Source | None:
    return source_cache.get(slug, lambda: Source.objects.filter(slug=slug).first())


def source_for_token(token: str) -> Source | None:
    if not token:
        return None
    return Source.objects.filter(api_token_hash=hash_token(token), active=True).first()
