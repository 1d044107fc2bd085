"""An erasure's receipt, as the API shows it (moderation/services/erasures.py does the work)."""

from __future__ import annotations

from typing import Any

from moderation.models import Erasure, Source


def erasure_for(*, source: Source, erasure_id: str) -> Erasure | None:
    return Erasure.objects.filter(source=source, erasure_id=erasure_id).first()


def erasure_receipt(erasure: Erasure) -> dict[str, Any]:
    """The receipt as the API shows it."""
    return {
        "id": erasure.erasure_id,
        "status": erasure.status,
        "requested": (
            {"author_id": erasure.author_id}
            if erasure.author_id
            else {"external_ids": list(erasure.external_ids)}
        ),
        "created_at": erasure.created_at.isoformat(),
        "finished_at": erasure.finished_at.isoformat() if erasure.finished_at else None,
        "erased": list(erasure.erased),
        "held": list(erasure.held),
        "not_found": list(erasure.not_found),
    }
