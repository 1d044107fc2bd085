"""Sources (integrating products), items (their content and review state), decisions."""

import base64
import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def new_api_token() -> str:
    return "mqt_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def free_for(reviewer, now) -> Q:
    """Items this reviewer may take: unclaimed, claim expired, or already theirs."""
    return Q(claimed_by__isnull=True) | Q(claim_expires_at__lt=now) | Q(claimed_by=reviewer)


class Source(models.Model):
    """An integrating product: signs webhooks with its secret, reads back with its token."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    # Needed in clear to verify HMACs; never rendered after creation.
    webhook_secret = models.CharField(max_length=200, default=new_webhook_secret)
    # Secret rotation: the previous secret stays valid until this moment.
    previous_webhook_secret = models.CharField(max_length=200, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    # Only the SHA-256 of the bearer token is stored.
    api_token_hash = models.CharField(max_length=64, unique=True)
    callback_url = models.URLField(blank=True)
    active = models.BooleanField(default=True)
    labelers = models.ManyToManyField("labelers.Labeler", blank=True, related_name="sources")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


# Statuses of items waiting in the review queue (Item.Status values).
IN_QUEUE = ("flagged", "failed", "unrouted")


class Item(models.Model):
    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        LABELING = "labeling", "Labeling"
        LABELED = "labeled", "Labeled (not flagged)"
        FLAGGED = "flagged", "Flagged (in queue)"
        FAILED = "failed", "Labeling failed (in queue)"
        UNROUTED = "unrouted", "No labeler routed (in queue)"
        ESCALATED = "escalated", "Escalated"
        DECIDED = "decided", "Decided"

    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="items")
    external_id = models.CharField(max_length=255)
    webhook_id = models.CharField(max_length=255)
    content_text = models.TextField(blank=True)
    content_image = models.FileField(upload_to="images/%Y/%m/%d/", blank=True)
    content_image_type = models.CharField(max_length=50, blank=True)
    content_video = models.FileField(upload_to="videos/%Y/%m/%d/", blank=True)
    content_video_type = models.CharField(max_length=50, blank=True)
    # SHA-256 over all content fields: identical content is labeled once per labeler version.
    content_hash = models.CharField(max_length=64)
    metadata = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    # The same external_id sent again with other content is an edit: the item's content is the
    # current revision's, earlier ones are kept as ItemRevision rows.
    revision = models.PositiveIntegerField(default=1)
    revised_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RECEIVED)
    # Highest confidence, over its labels, that the item violates.
    violation_score = models.FloatField(null=True, blank=True)
    # The review queue's sort key, set while the item waits for a person: the violation score
    # of a flagged item; 1.0 for an item no labeler could judge (failed, or none routed), so it
    # sits with the most likely violations rather than disappear.
    queue_score = models.FloatField(null=True, blank=True)
    flagged_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    # A reviewer's claim, so two reviewers never decide the same item by accident.
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    claim_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source", "external_id"], name="item_external_id_unique"
            ),
            models.UniqueConstraint(fields=["source", "webhook_id"], name="item_webhook_id_unique"),
        ]
        indexes = [
            # The dispatch's scan for items still to route.
            models.Index(fields=["id"], condition=Q(status="received"), name="item_received_idx"),
            models.Index(
                models.F("queue_score").desc(),
                "id",
                condition=Q(status__in=IN_QUEUE),
                name="item_review_queue_idx",
            ),
            models.Index(
                "source",
                models.F("queue_score").desc(),
                "id",
                condition=Q(status__in=IN_QUEUE),
                name="item_review_queue_source_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source.slug}/{self.external_id}"


class ItemRevision(models.Model):
    """An earlier revision of an item's content, kept when the product sent an edit; its
    labels and decisions stay on the item with this revision number."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    webhook_id = models.CharField(max_length=255)
    content_text = models.TextField(blank=True)
    content_image = models.FileField(blank=True)
    content_image_type = models.CharField(max_length=50, blank=True)
    content_video = models.FileField(blank=True)
    content_video_type = models.CharField(max_length=50, blank=True)
    content_hash = models.CharField(max_length=64)
    metadata = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField()
    # Where the revision stood when the edit replaced it.
    status = models.CharField(max_length=20, choices=Item.Status.choices)
    violation_score = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["item", "number"]
        constraints = [
            models.UniqueConstraint(fields=["item", "number"], name="item_revision_unique")
        ]
        indexes = [models.Index(fields=["webhook_id"], name="item_revision_webhook_idx")]

    def __str__(self) -> str:
        return f"{self.item_id} r{self.number}"


class Decision(models.Model):
    """A reviewer's decision. Append-only: a changed mind is a new row; an audit record, so
    an item with decisions cannot be deleted."""

    class Action(models.TextChoices):
        APPROVE = "approve", "Approve"
        REMOVE = "remove", "Remove"
        ESCALATE = "escalate", "Escalate"

    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="decisions")
    # The item revision decided: an edit after a decision is undecided until reviewed.
    revision = models.PositiveIntegerField(default=1)
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT)
    action = models.CharField(max_length=20, choices=Action.choices)
    reason = models.CharField(max_length=200, blank=True)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.action} on {self.item_id} by {self.reviewer_id}"
