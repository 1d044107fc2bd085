"""The audit log: one row per staff action, chained by hash (audit/chain.py)."""

from __future__ import annotations

from django.db import models


class AuditEntry(models.Model):
    """Append-only: written by audit.services.audit_record only, never changed or deleted
    (the admin allows neither, audit_verify notices either). `seq` numbers the chain without
    gaps (ids may skip on PostgreSQL after a rollback), so a removed row is named exactly.
    The actor is an id and the name they had then, not a foreign key: deleting or renaming a
    user changes nothing here."""

    seq = models.PositiveBigIntegerField(unique=True)
    at = models.DateTimeField(db_index=True)
    actor_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    actor_username = models.CharField(max_length=150, blank=True, db_index=True)
    # Text as lib.logins.client_ip gave it: an inet column would rewrite some addresses
    # (IPv4-mapped IPv6) and the stored value would no longer match its hash.
    ip = models.CharField(max_length=45, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    # Unique: two appends from the same head cannot both commit, so the chain cannot fork.
    prev_hash = models.CharField(max_length=64, unique=True)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-seq"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit log"
        indexes = [models.Index(fields=["object_type", "object_id"], name="audit_object_idx")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} by {self.actor_username or 'system'}"


class AuditChainHead(models.Model):
    """One row (pk=1): the newest entry's seq and hash. Appends lock it, so they take turns;
    audit_verify compares it with the newest row, so removing the newest rows shows too."""

    seq = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="0" * 64)

    class Meta:
        verbose_name = "audit chain head"

    def __str__(self) -> str:
        return f"audit chain head at seq {self.seq}"
