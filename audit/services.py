"""audit_record: the one way a row gets into the audit log.

Call it from the service (or, where the action has no service, the view) that performs the
action, inside the action's transaction and as its last write: a rolled-back action leaves no
row, and the chain head's lock (taken here, held to the commit) is always the last lock the
transaction takes, so it cannot deadlock with the locks the action itself holds.

Rows say what happened, never the content it happened to: no item text or media, no notes,
no criteria text (a digest instead), no secrets or tokens. `before`/`after` are small JSON
objects of plain values; keys that name content or secrets, long strings, or a large payload
are refused (ValueError) so that a careless call fails its test instead of leaking.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from audit.chain import entry_hash
from audit.middleware import current_client_ip
from audit.models import AuditChainHead, AuditEntry
from lib.logins import client_ip

ACTION_PATTERN = re.compile(r"^[a-z][a-z_]*\.[a-z][a-z_]*$")
# Key names that hold content or secrets somewhere in the project: refused in before/after.
FORBIDDEN_KEY = re.compile(
    r"(^|_)(text|content|body|media|note|notes|payload|secret|secrets|token|password|key|"
    r"credentials|criteria_text|url)($|_)"
)
MAX_STRING = 200
MAX_JSON_BYTES = 4000


def _values_check(name: str, values: dict[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    if not isinstance(values, dict):
        raise ValueError(f"audit {name} must be a dict")
    # What is hashed must be what the database gives back: plain JSON only.
    plain = json.loads(json.dumps(values, default=str))

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                if FORBIDDEN_KEY.search(str(key).lower()):
                    raise ValueError(f"audit {name}: {path}{key} may hold content or a secret")
                walk(inner, f"{path}{key}.")
        elif isinstance(value, list):
            for inner in value:
                walk(inner, path)
        elif isinstance(value, str) and len(value) > MAX_STRING:
            raise ValueError(f"audit {name}: {path.rstrip('.')} is longer than {MAX_STRING}")

    walk(plain, "")
    if len(json.dumps(plain)) > MAX_JSON_BYTES:
        raise ValueError(f"audit {name} is larger than {MAX_JSON_BYTES} bytes")
    return plain


def audit_record(
    *,
    action: str,
    actor=None,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: Any = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    request=None,
    actor_username: str = "",
) -> AuditEntry:
    """Append one row. `action` is "<thing>.<verb>" (e.g. "decision.remove"); `obj` (or
    `object_type` + `object_id`) is what it was done to; `actor` the user (None: the system
    or an unknown person, then `actor_username` may say the name tried). The client address
    comes from `request`, else from the request being served (AuditRequestMiddleware)."""
    if not ACTION_PATTERN.match(action):
        raise ValueError(f"audit action {action!r} is not '<thing>.<verb>'")
    if obj is not None:
        object_type, object_id = obj._meta.model_name, obj.pk
    values: dict[str, Any] = {
        "actor_id": actor.pk if actor is not None and actor.is_authenticated else None,
        "actor_username": (
            actor.get_username() if actor is not None and actor.is_authenticated else actor_username
        )[:150],
        "ip": str((client_ip(request) if request is not None else current_client_ip()) or "")[:45],
        "action": action,
        "object_type": str(object_type or "")[:64],
        "object_id": "" if object_id in (None, "") else str(object_id)[:64],
        "before": _values_check("before", before),
        "after": _values_check("after", after),
    }
    with transaction.atomic():
        # The lock makes appends take turns (PostgreSQL); SQLite's IMMEDIATE transactions
        # already do. Either way prev_hash is unique: a forked chain cannot commit.
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(pk=1)
        values.update(seq=head.seq + 1, at=timezone.now(), prev_hash=head.hash)
        values["hash"] = entry_hash(values)
        entry = AuditEntry.objects.create(**values)
        head.seq, head.hash = entry.seq, entry.hash
        head.save(update_fields=["seq", "hash"])
    return entry
