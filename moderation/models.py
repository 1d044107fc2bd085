"""Sources (integrating products), items (their content and review state), decisions."""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import datetime

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from lib.days import today_start


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def new_api_token() -> str:
    return "mqt_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def free_for(reviewer, now) -> Q:
    """Items this reviewer may take: unclaimed, claim expired, or already theirs."""
    return Q(claimed_by__isnull=True) | Q(claim_expires_at__lt=now) | Q(claimed_by=reviewer)


def shift_start(settings_row: ReviewerSettings | None) -> datetime:
    """A shift starts at the reviewer's last break, and at the latest at midnight UTC."""
    midnight = today_start()
    started = settings_row.shift_started_at if settings_row else None
    return max(started, midnight) if started else midnight


def default_account_thresholds() -> list[dict]:
    """A new source proposes a warning at 3 active strikes, a 7-day suspension at 5 and a ban
    at 8 (the product contract's defaults; admins change them per source)."""
    return [
        {"strikes": 3, "action": "warn"},
        {"strikes": 5, "action": "suspend", "days": 7},
        {"strikes": 8, "action": "ban"},
    ]


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
    # Decisions are POSTed here (moderation/callbacks/deliveries.py), signed with
    # callback_secret, or with webhook_secret when that is empty.
    callback_url = models.URLField(blank=True)
    callback_secret = models.CharField(max_length=200, blank=True)
    # Reviewer identity leaves the system only when an admin allows it for this source.
    callback_include_reviewer = models.BooleanField(
        default=False,
        help_text="Send the reviewer's id and username with each decision.",
    )
    active = models.BooleanField(default=True)
    # How long an item of this source may wait for review; past it, the queue marks it and
    # puts it first within its score band. Empty: no SLA.
    review_sla_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="e.g. 240 for 4 hours; empty for no SLA"
    )
    labelers = models.ManyToManyField("labelers.Labeler", blank=True, related_name="sources")
    # Strikes of this source's authors count for this many days after the removal.
    strike_window_days = models.PositiveIntegerField(
        default=90, help_text="A removal's strikes count for this many days."
    )
    # Active strikes that propose an account action: [{"strikes": 3, "action": "warn"},
    # {"strikes": 5, "action": "suspend", "days": 7}, ...] (see moderation/strikes.py).
    account_thresholds = models.JSONField(
        default=default_account_thresholds,
        blank=True,
        help_text='e.g. [{"strikes": 3, "action": "warn"}, {"strikes": 5, "action": "suspend", '
        '"days": 7}, {"strikes": 8, "action": "ban"}]; empty: never propose an action.',
    )
    # A removal or an account action may be appealed for this many days (the statement of
    # reasons tells the product's user until when).
    appeal_window_days = models.PositiveIntegerField(
        default=180, help_text="A removal or account action may be appealed for this many days."
    )
    # How long an appeal of this source may wait for a senior; past it, the appeals queue
    # marks it. Empty: no SLA.
    appeal_sla_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="e.g. 2880 for 2 days; empty for no SLA"
    )
    # An approved item goes back to review when this many new distinct reporters report it
    # after the approval (a removed one never does).
    report_return_reporters = models.PositiveIntegerField(
        default=3,
        validators=[MinValueValidator(1)],
        help_text="New distinct reporters that send an approved item back to review.",
    )
    # Content (text, media, revisions, cached and shadow answers' text, report comments,
    # appeal statements) is purged this many days after the item's final decision, or after
    # it was cleared (labeled, not flagged); ids, figures, decisions and reasons stay (see
    # moderation/services/retention.py). A year by default: longer than the appeal window
    # (180 days) and the strike window (90), so an appeal or a strike never points at
    # content already gone, and a year of content for quality reviews. Empty: kept forever.
    retention_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        default=365,
        validators=[MinValueValidator(1)],
        help_text="Days content is kept after the final decision (or after being cleared); "
        "empty: kept forever.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


# Statuses of items waiting in the review queue (Item.Status values): flagged by a labeler,
# judged by none (failed, unrouted), an unflagged item drawn as an audit sample, or a decided
# item an admin sent back for another look.
# A reported item (users reported it, whatever its labels said) waits here too.
IN_QUEUE = ("flagged", "failed", "unrouted", "audit", "rereview", "reported")
# Items a person may still claim and decide: the queue, and escalated items (seniors only).
REVIEWABLE = (*IN_QUEUE, "escalated")
# Items the queue's search looks through (the queue, escalated, and decided: a reviewer's
# golden items). Its trigram indexes hold only what search_indexed_q says, so intake's new
# items and the dispatch's labeling ones never pay for them.
SEARCHED = (*REVIEWABLE, "decided")


def search_indexed_q(prefix: str = "") -> Q:
    """The items the trigram search indexes hold (migration 0028): those in a searched
    status (or erased), and every item edited since it arrived. "Decided by me" names no
    status, yet an item a reviewer decided stays in one of those statuses until the product
    edits it (a new revision); so its search names this condition, and the planner reads the
    indexes instead of scanning the table. A query's condition must imply this one for them
    to serve it: each queue's search names statuses among SEARCHED."""
    return Q(**{f"{prefix}status__in": (*SEARCHED, "erased")}) | Q(**{f"{prefix}revision__gt": 1})


# The queue's "labeling failed" status: no machine judged these.
QUEUE_FAILED = ("failed", "unrouted")
# Items whose status still follows their labels (a verdict moves them): not decided by anyone
# yet. An audit sample follows its labels like any undecided item (a later "1" flags it); an
# escalated item does not (a person judged it already).
FOLLOWS_LABELS = (
    "received",
    "labeling",
    "labeled",
    "flagged",
    "failed",
    "unrouted",
    "audit",
    "reported",
)
# Items a relabel after publishing a new labeler version may pick: undecided, in the queue or
# not (a "0" of the old version may be a "1" of the new one), escalated ones too; never
# decided ones (their review is done) nor audit samples.
RELABEL_ON_PUBLISH = (
    "received",
    "labeling",
    "labeled",
    "flagged",
    "failed",
    "unrouted",
    "escalated",
    "reported",
)

# "Remove all open items" on an author's page acts on at most this many at a time, the oldest
# first: each is a decision with its own transaction, strikes and callback inside the senior's
# request, and the page carries what the senior confirms (id and revision of each). An author
# with more open items is removed in rounds of this size, the page saying how many remain.
REMOVE_ALL_BATCH = 200

# Where an audit sample sorts in the queue: it has no violation score worth sorting by (no
# labeler flagged it), and at its own low score it would wait behind every near-miss forever;
# here it is reviewed within the day, among likely violations, at the share admins chose.
AUDIT_QUEUE_SCORE = 0.75

# The queue sorts by score band (tenths of the score: 0.9 <= score <= 1.0 is one band, 0.8 to
# 0.9 the next ...), items past their SLA first within a band, then by score. A breached
# item thus jumps ahead of better-scored items of its band, never of a higher band.
QUEUE_BANDS = 10


def queue_band(score: float) -> int:
    """0..9; a score of exactly 1.0 belongs to the top band (0.9 to 1.0)."""
    # round() first: 0.7 * 10 is 7.000000000000001 and 0.3 * 10 can fall just below 3.
    return min(QUEUE_BANDS - 1, int(round(score * QUEUE_BANDS, 9)))


def queue_key(score: float | None, *, breached: bool) -> float | None:
    """The stored sort key, smallest first: -(4 * band + 2 * breached + score). Within a band
    the breach term (2) outweighs any score difference (< 1), and a band step (4) outweighs
    both. None for an item not waiting."""
    if score is None:
        return None
    return -(4.0 * queue_band(score) + (2.0 if breached else 0.0) + score)


def queue_key_ranges(score_min: float | None, score_max: float | None) -> list[tuple[float, float]]:
    """The ranges of the sort key, in queue order, that hold every item whose score lies in
    [score_min, score_max]: a score filter then reads index ranges instead of filtering rows.

    One range [key(max, breached), key(min, unbreached)] would do, but in the band of each
    bound the breach term puts out-of-range items inside it (unbreached items above the
    maximum, breached items below the minimum: a whole band at worst), so the two gaps are
    cut out, leaving at most three ranges: exactly the scores within the bounds (up to the
    key's float rounding, ~1e-14 at a bound).
    """
    high_score = 1.0 if score_max is None else score_max
    low_score = 0.0 if score_min is None else score_min
    if low_score > high_score:
        return []
    top_band, bottom_band = queue_band(high_score), queue_band(low_score)

    def key(score: float, breached: bool) -> float:
        value = queue_key(score, breached=breached)
        assert value is not None
        return value

    if top_band == bottom_band:
        return [
            (key(high_score, True), key(low_score, True)),
            (key(high_score, False), key(low_score, False)),
        ]
    # The band's edges as keys: its floor score (the band's lowest) and its top (highest).
    top_floor = top_band / QUEUE_BANDS
    bottom_top = (bottom_band + 1) / QUEUE_BANDS
    return [
        (key(high_score, True), -(4.0 * top_band + 2.0 + top_floor)),
        (key(high_score, False), key(low_score, True)),
        (-(4.0 * bottom_band + bottom_top), key(low_score, False)),
    ]


class Item(models.Model):
    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        LABELING = "labeling", "Labeling"
        LABELED = "labeled", "Labeled (not flagged)"
        FLAGGED = "flagged", "Flagged (in queue)"
        FAILED = "failed", "Labeling failed (in queue)"
        UNROUTED = "unrouted", "No labeler routed (in queue)"
        # Not flagged, drawn at random for a person to check: how recall is measured.
        AUDIT = "audit", "Audit sample (in queue)"
        # Decided, sent back to the queue by an admin (e.g. after the criteria changed).
        REREVIEW = "rereview", "Sent for re-review (in queue)"
        # Undecided, not flagged, but users reported it (moderation/services/reports.py).
        REPORTED = "reported", "Reported (in queue)"
        ESCALATED = "escalated", "Escalated"
        DECIDED = "decided", "Decided"
        # A product's erasure removed its content: out of every queue, never labeled again.
        ERASED = "erased", "Erased"

    # No index of its own: item_webhook_id_unique (source, webhook_id) leads with it and
    # serves every lookup by source (every webhook paid for a second index for nothing).
    source = models.ForeignKey(
        Source, on_delete=models.PROTECT, related_name="items", db_index=False
    )
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
    # The account that posted it, when the product says (the body's optional `author`).
    # No index of its own: item_author_idx (author, received_at, id) serves every lookup.
    author = models.ForeignKey(
        "Author",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="items",
        db_index=False,
    )
    received_at = models.DateTimeField(auto_now_add=True)
    # The same external_id sent again with other content is an edit: the item's content is the
    # current revision's, earlier ones are kept as ItemRevision rows.
    revision = models.PositiveIntegerField(default=1)
    revised_at = models.DateTimeField(null=True, blank=True)
    # When its current content arrived (received_at, or the edit's revised_at): the start of
    # its wait for review, against its source's SLA.
    waiting_since = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RECEIVED)
    # Highest confidence, over its labels, that the item violates.
    violation_score = models.FloatField(null=True, blank=True)
    # The review queue's sort key, set while the item waits for a person: the violation score
    # of a flagged item; 1.0 for an item no labeler could judge (failed, or none routed), so it
    # sits with the most likely violations rather than disappear.
    queue_score = models.FloatField(null=True, blank=True)
    # The queue's stored sort key, ascending: score band first, items past their source's
    # review SLA first within a band, then the score (see queue_key()). Kept in step with
    # queue_score by every write that sets it, and by the SLA sweep as time passes; one
    # column so that the keyset `(queue_key, id) > (k, i)` is a range scan of one index.
    queue_key = models.FloatField(null=True, blank=True)
    # Past its source's review SLA while waiting (set by the SLA sweep, cleared by an edit).
    sla_breached = models.BooleanField(default=False)
    # The score of its open reports (see moderation/services/reports.py), None without any:
    # a reported item waits in the queue at the higher of this and its violation score.
    report_score = models.FloatField(null=True, blank=True)
    flagged_at = models.DateTimeField(null=True, blank=True)
    # The labeler versions whose answers make up the current verdict (ids, as the labelers
    # app handed them over); each decision keeps a copy, so quality and re-review know which
    # criteria a reviewer was looking at.
    verdict_versions = models.JSONField(default=list, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    # The action of the decision the item stands on (a Decision.Action: approve or remove),
    # set with status "decided" in the one place a decision leaves its item
    # (item_decision_apply); meaningless in any other status. The author panel counts an
    # author's removed items with it from one index range instead of a decision per item.
    decided_action = models.CharField(max_length=16, blank=True, default="", db_default="")
    # A reviewer's claim, so two reviewers never decide the same item by accident. Indexed
    # by item_claimed_by_idx (claimed items only: most are not, and intake's are never).
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    # Governance (moderation/services/retention.py, erasures.py). A legal hold (an admin's,
    # on the item or on its author) stops both the retention purge and an erasure.
    legal_hold = models.BooleanField(default=False)
    legal_hold_reason = models.CharField(max_length=200, blank=True)
    # When its content was removed (retention or erasure): ids, labels' figures, decisions and
    # reasons stay. Also the purge's resume marker: a purged item is never picked again.
    purged_at = models.DateTimeField(null=True, blank=True)
    # When a product's erasure removed it: its external_id is free again (a new item).
    erased_at = models.DateTimeField(null=True, blank=True)
    # The team queue the routing rules chose (moderation/services/routing.py); empty: the
    # default queue, so that items need no rewrite when rules come and go.
    queue = models.ForeignKey(
        "Queue", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    # The language of its current text (ISO 639-1, e.g. "en"), detected by the dispatch before
    # the item is labeled or routed; empty: not yet (received), no text, or too little to tell.
    language = models.CharField(max_length=8, blank=True)

    class Meta:
        permissions = [
            ("review_item", "Can review and decide items in the queue"),
            ("review_escalated", "Can review and decide escalated items (senior reviewer)"),
        ]
        constraints = [
            # Erased items leave the constraint: the same external_id sent after an erasure is
            # a new item (every lookup by external_id reads live items only, LIVE).
            models.UniqueConstraint(
                fields=["source", "external_id"],
                condition=Q(erased_at__isnull=True),
                name="item_external_id_live_unique",
            ),
            models.UniqueConstraint(fields=["source", "webhook_id"], name="item_webhook_id_unique"),
        ]
        indexes = [
            # The dispatch's scan for items still to route.
            models.Index(fields=["id"], condition=Q(status="received"), name="item_received_idx"),
            # The queue's pages, and the same per source (filters and restricted reviewers).
            models.Index(
                fields=["queue_key", "id"],
                condition=Q(status__in=IN_QUEUE),
                name="item_queue_idx",
            ),
            models.Index(
                fields=["source", "queue_key", "id"],
                condition=Q(status__in=IN_QUEUE),
                name="item_queue_source_idx",
            ),
            # "Labeling failed" (failed + unrouted): a few among many, so an index of their own.
            models.Index(
                fields=["queue_key", "id"],
                condition=Q(status__in=QUEUE_FAILED),
                name="item_queue_failed_idx",
            ),
            models.Index(
                fields=["queue_key", "id"],
                condition=Q(status="escalated"),
                name="item_queue_escalated_idx",
            ),
            # A team queue's pages and "next" (queue first: a reviewer's three queues are
            # three index ranges, merged), and the same per language (their languages first).
            models.Index(
                fields=["queue", "queue_key", "id"],
                condition=Q(status__in=IN_QUEUE),
                name="item_queue_team_idx",
            ),
            models.Index(
                fields=["queue", "language", "queue_key", "id"],
                condition=Q(status__in=IN_QUEUE),
                name="item_queue_language_idx",
            ),
            # Per queue and SLA state, waiting items by age: the dashboard's figures per queue.
            models.Index(
                fields=["queue", "sla_breached", "waiting_since"],
                condition=Q(status__in=IN_QUEUE),
                name="item_queue_sla_idx",
            ),
            # Per queue, source and SLA state, waiting items by age: the SLA header of a
            # reviewer served only some queues (each figure one range per visible queue).
            models.Index(
                fields=["queue", "source", "sla_breached", "waiting_since"],
                condition=Q(status__in=IN_QUEUE),
                name="item_queue_source_sla_idx",
            ),
            # Per source and SLA state, waiting items by age: the SLA header and the SLA sweep.
            models.Index(
                fields=["source", "sla_breached", "waiting_since"],
                condition=Q(status__in=IN_QUEUE),
                name="item_waiting_sla_idx",
            ),
            # The admins' dashboard: items received and flagged today and this week, each
            # count one range of an index (flagged_at is empty for most items).
            models.Index(fields=["received_at"], name="item_received_at_idx"),
            # Decided items by the day they were decided (DecidedRollup's days, and today's).
            models.Index(
                fields=["decided_at"], condition=Q(status="decided"), name="item_decided_at_idx"
            ),
            models.Index(
                fields=["flagged_at"],
                condition=Q(flagged_at__isnull=False),
                name="item_flagged_at_idx",
            ),
            # An author's items newest first (the author's page, keyset by time and id),
            # and their counts (the item page's author panel).
            models.Index(
                fields=["author", "received_at", "id"],
                condition=Q(author__isnull=False),
                name="item_author_idx",
            ),
            # The author panel's flagged and removed counts: each a range of its own index,
            # however many items the author has (entries only for flagged / removed items).
            models.Index(
                fields=["author"],
                condition=Q(author__isnull=False, flagged_at__isnull=False),
                name="item_author_flagged_idx",
            ),
            models.Index(
                fields=["author"],
                condition=Q(author__isnull=False, status="decided", decided_action="remove"),
                name="item_author_removed_idx",
            ),
            # The retention purge's scans: per source, decided (or cleared) items whose
            # content is still there, oldest first; purged items leave the index.
            models.Index(
                fields=["source", "decided_at"],
                condition=Q(status="decided", purged_at__isnull=True),
                name="item_retention_decided_idx",
            ),
            models.Index(
                fields=["source", "waiting_since"],
                condition=Q(status="labeled", purged_at__isnull=True),
                name="item_retention_cleared_idx",
            ),
            # A reviewer's claims (claims.py; SET_NULL when a user is deleted).
            models.Index(
                fields=["claimed_by"],
                condition=Q(claimed_by__isnull=False),
                name="item_claimed_by_idx",
            ),
            # Media is stored once per content: before a purge deletes a file it asks whether
            # another item still shows it, one lookup of these (items with media only).
            models.Index(
                fields=["content_image"], condition=~Q(content_image=""), name="item_image_idx"
            ),
            models.Index(
                fields=["content_video"], condition=~Q(content_video=""), name="item_video_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source.slug}/{self.external_id}"

    @property
    def has_media(self) -> bool:
        return bool(self.content_image or self.content_video)

    @property
    def content_state(self) -> str:
        """ "present", "purged" (retention) or "erased" (a product's erasure)."""
        if self.erased_at is not None:
            return "erased"
        return "purged" if self.purged_at is not None else "present"


# Items a product can still reach by external_id (an erased one's external_id is free).
LIVE = Q(erased_at__isnull=True)


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
        indexes = [
            models.Index(fields=["webhook_id"], name="item_revision_webhook_idx"),
            # As on Item: whether a revision still shows a media file.
            models.Index(
                fields=["content_image"],
                condition=~Q(content_image=""),
                name="item_revision_image_idx",
            ),
            models.Index(
                fields=["content_video"],
                condition=~Q(content_video=""),
                name="item_revision_video_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.item_id} r{self.number}"


# The longest note a reviewer may leave with a decision, an escalation or a golden answer:
# a few paragraphs. Longer text is refused (the form stops at it too) rather than cut, so
# nothing the reviewer wrote is lost without them knowing.
NOTE_MAX_LENGTH = 5_000


class Decision(models.Model):
    """A reviewer's decision. Append-only: a changed mind is a new row; an audit record, so
    an item with decisions cannot be deleted."""

    class Action(models.TextChoices):
        APPROVE = "approve", "Approve"
        REMOVE = "remove", "Remove"
        ESCALATE = "escalate", "Escalate"
        # Reverses the decision it points at (`undoes`); the item goes back to where it was.
        UNDO = "undo", "Undo"

    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="decisions")
    # The item revision decided: an edit after a decision is undecided until reviewed.
    revision = models.PositiveIntegerField(default=1)
    # None: made by the system (a labeler's auto-approve band), never by a person.
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT
    )
    action = models.CharField(max_length=20, choices=Action.choices)
    # The reason's name as it read when chosen (history survives a rename), and the reason.
    reason = models.CharField(max_length=200, blank=True)
    reason_choice = models.ForeignKey(
        "DecisionReason", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Where the item stood before this decision, so an undo can put it back.
    status_before = models.CharField(max_length=20, blank=True)
    undoes = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="undone_by"
    )
    # The labeler versions in force for the item when it was decided (Item.verdict_versions).
    labeler_versions = models.JSONField(default=list, blank=True)
    # The products' report ids this decision answers (its item's open reports when it was
    # made), kept as sent: the callback and the feed carry them as `report_ids`.
    report_ids = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            # "My decisions", newest first.
            models.Index(fields=["reviewer", "-created_at"], name="decision_reviewer_idx"),
            # Decisions today and this week, for everyone (the dashboard, the team page).
            models.Index(fields=["created_at"], name="decision_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.action} on {self.item_id} by {self.reviewer_id or 'system'}"

    @property
    def automatic(self) -> bool:
        return self.reviewer_id is None

    @property
    def for_products(self) -> bool:
        """Whether products hear of this decision (callback, feed, item API). An escalation
        is the team's internal hand-over to a senior, with internal reasons: the product only
        learns that the item is still under review. Taking one back is as internal."""
        if self.action == self.Action.ESCALATE:
            return False
        undone = self.undoes
        return not (
            self.action == self.Action.UNDO and undone and undone.action == self.Action.ESCALATE
        )


# The decisions products hear of, as a filter (Decision.for_products, for querysets).
FOR_PRODUCTS = ~models.Q(action="escalate") & ~models.Q(action="undo", undoes__action="escalate")


class DecisionReason(models.Model):
    """A reason reviewers pick for a decision; admins keep the list. Each active reason of an
    action has its own digit (`key`), which reviewers learn: it changes only when an admin
    changes it, never because another reason was added or archived. Reasons are archived
    (active off), never deleted: past decisions point at them."""

    name = models.CharField(max_length=200)
    action = models.CharField(
        max_length=20,
        choices=[c for c in Decision.Action.choices if c[0] != Decision.Action.UNDO],
    )
    active = models.BooleanField(default=True)
    order = models.PositiveIntegerField(default=0)
    key = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(9)],
        help_text="The digit reviewers press for this reason (1-9), shown beside it. Reviewers "
        "learn it: change it only on purpose. Empty: the next free digit of the action.",
    )
    # Strikes a removal for this reason counts against the author (0: none).
    strike_weight = models.PositiveSmallIntegerField(
        default=1, help_text="Strikes a removal for this reason counts (0: it does not count)."
    )
    # The policy behind the reason, in words the product's user reads: sent with every
    # removal for it, in the statement of reasons.
    policy_text = models.TextField(
        blank=True,
        help_text="The policy this reason stands for, as the product's users read it in the "
        "statement of reasons sent with each removal.",
    )

    class Meta:
        ordering = ["action", "key", "order", "name"]
        constraints = [
            models.UniqueConstraint(fields=["action", "name"], name="decision_reason_unique"),
            models.UniqueConstraint(
                fields=["action", "key"],
                condition=models.Q(active=True),
                name="decision_reason_key_unique",
                violation_error_message="Another active reason of this action has that key: "
                "give this one another, or archive that one first.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()}: {self.name}"


class ReviewerSettings(models.Model):
    """A reviewer's workspace: which sources they may review, how media is shown, and an
    optional exposure budget per shift (a wellness prompt, never a score)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="review_settings"
    )
    # Empty: every source.
    sources = models.ManyToManyField(
        Source, blank=True, related_name="+", help_text="Empty: the reviewer sees every source."
    )
    blur_media = models.BooleanField(default=True)
    grayscale_media = models.BooleanField(default=False)
    autoplay_video = models.BooleanField(default=False)
    mute_video = models.BooleanField(default=True)
    # After this many media reveals, or this many minutes, in a shift the workspace proposes
    # a break and serves text-only items first.
    exposure_budget_reveals = models.PositiveIntegerField(null=True, blank=True)
    exposure_budget_minutes = models.PositiveIntegerField(null=True, blank=True)
    shift_started_at = models.DateTimeField(null=True, blank=True)
    # Share of this reviewer's "next" items that are golden items (empty: the site's
    # REVIEW_GOLDEN_SHARE; 0: none).
    golden_share = models.FloatField(
        null=True, blank=True, help_text="0 to 1; empty: the site default (REVIEW_GOLDEN_SHARE)"
    )
    # The languages the reviewer reads (ISO 639-1 codes): "next" serves items in them first.
    languages = models.JSONField(default=list, blank=True)

    class Meta:
        verbose_name_plural = "reviewer settings"

    def __str__(self) -> str:
        return f"settings of {self.user}"


class MediaReveal(models.Model):
    """A reviewer revealed an item's media: counted for exposure, per day and per shift."""

    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    revealed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["reviewer", "revealed_at"], name="reveal_reviewer_idx")]

    def __str__(self) -> str:
        return f"{self.reviewer_id} revealed {self.item_id}"


class CallbackDelivery(models.Model):
    """One decision sent back to its source's callback URL: the record of what is still to
    send. Created with the decision; a worker claims it with a conditional UPDATE, and the
    sweep sends what is due (retries, lost messages, dead workers)."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed (gave up)"
        # Not sent: a newer decision of the same item was acknowledged first.
        SUPERSEDED = "superseded", "Superseded (a newer decision was delivered)"

    # What it sends: a decision (decision.created) or an account action
    # (account.action.created); exactly one of the two.
    decision = models.OneToOneField(
        Decision, null=True, blank=True, on_delete=models.PROTECT, related_name="callback_delivery"
    )
    account_action = models.OneToOneField(
        "AccountAction",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="callback_delivery",
    )
    # ... or an appeal's outcome (appeal.decided).
    appeal = models.OneToOneField(
        "Appeal",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="callback_delivery",
    )
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="callbacks")
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING)
    # Attempts since the delivery was created or last redelivered: the retry schedule's step.
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # When a message was last sent for it: the sweep sends it again only after
    # CALLBACK_LOST_AFTER_SECONDS (the message was lost).
    enqueued_at = models.DateTimeField(null=True, blank=True)
    # A sending delivery whose lease ran out belongs to a dead worker.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "callback deliveries"
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    decision__isnull=False, account_action__isnull=True, appeal__isnull=True
                )
                | Q(decision__isnull=True, account_action__isnull=False, appeal__isnull=True)
                | Q(decision__isnull=True, account_action__isnull=True, appeal__isnull=False),
                name="callback_sends_one_event",
            )
        ]
        indexes = [
            # The sweep's scan for due deliveries; delivered and failed ones are not in it.
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(state__in=["pending", "sending"]),
                name="callback_due_idx",
            ),
            # The dashboard's count of deliveries still to send or given up: delivered ones
            # (nearly all) stay out of the index.
            models.Index(
                fields=["state"],
                condition=Q(state__in=["pending", "sending", "failed"]),
                name="callback_open_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.webhook_id} to {self.source_id}"

    @property
    def webhook_id(self) -> str:
        """The same for every attempt, so receivers can drop a repeat."""
        if self.account_action_id is not None:
            return f"acct_{self.account_action_id}"
        if self.appeal_id is not None:
            return f"appeal_{self.appeal_id}"
        return f"dec_{self.decision_id}"


class CallbackAttempt(models.Model):
    """One HTTP attempt of a delivery, for the delivery log."""

    delivery = models.ForeignKey(
        CallbackDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    started_at = models.DateTimeField()
    url = models.CharField(max_length=2000)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    # At most CALLBACK_BODY_LOG_BYTES of the receiver's answer.
    response_body = models.TextField(blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["delivery", "id"]

    def __str__(self) -> str:
        return f"{self.delivery} at {self.started_at:%Y-%m-%d %H:%M:%S}"

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class GoldenItem(models.Model):
    """A decided item whose right answer an admin vouches for. A share of each reviewer's
    "next" items are golden items, served like any other; their answers measure reviewers
    against the expected action (shown to leads, never to the reviewer while reviewing)."""

    item = models.OneToOneField(Item, on_delete=models.PROTECT, related_name="golden")
    # The revision the expected action is about (an edit afterwards makes it stale).
    revision = models.PositiveIntegerField(default=1)
    expected_action = models.CharField(
        max_length=20,
        choices=[
            (Decision.Action.APPROVE, "Approve"),
            (Decision.Action.REMOVE, "Remove"),
        ],
    )
    note = models.TextField(blank=True)
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"golden {self.item_id}: {self.expected_action}"


class GoldenAnswer(models.Model):
    """A golden item served to a reviewer (answered_at empty while it waits for them), and
    their answer. Never a Decision: it does not change the item or reach the product.

    A skip (or release) leaves answered_at empty and sets action to "skip": neither right
    nor wrong, and not served again; the reviewer may still answer it if they come back.
    """

    # The action of an answer skipped or released (not a Decision action).
    SKIP = "skip"

    golden = models.ForeignKey(GoldenItem, on_delete=models.CASCADE, related_name="answers")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    served_at = models.DateTimeField(auto_now_add=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    action = models.CharField(max_length=20, blank=True)
    reason = models.CharField(max_length=200, blank=True)
    # What the reviewer typed in the page's note box, as with a decision (shown to leads).
    note = models.TextField(blank=True)
    correct = models.BooleanField(null=True, blank=True)

    class Meta:
        ordering = ["-served_at"]
        constraints = [
            # Each golden item at most once per reviewer: a second time it would be memory.
            models.UniqueConstraint(fields=["golden", "reviewer"], name="golden_once_per_reviewer")
        ]
        indexes = [models.Index(fields=["reviewer", "answered_at"], name="golden_answer_idx")]

    def __str__(self) -> str:
        return f"{self.reviewer_id} on golden {self.golden_id}: {self.action or 'open'}"


class Author(models.Model):
    """An account on a source's product, as its items name it (`author.id`): one per
    (source, author id); authors never cross sources."""

    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="authors")
    # The product's id of the account (the body's author.id).
    external_id = models.CharField(max_length=255)
    name = models.CharField(max_length=255, blank=True)
    url = models.CharField(max_length=2000, blank=True)
    # When the account was created on the product (author.created_at), if it said.
    account_created_at = models.DateTimeField(null=True, blank=True)
    # A legal hold on the author holds every item of theirs (retention and erasure).
    legal_hold = models.BooleanField(default=False)
    legal_hold_reason = models.CharField(max_length=200, blank=True)
    # When an erasure by author id removed the name and url (the id stays: it is the key).
    erased_at = models.DateTimeField(null=True, blank=True)
    first_seen_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], name="author_unique")
        ]

    def __str__(self) -> str:
        return f"{self.source_id}/{self.external_id}"


class Strike(models.Model):
    """A removal counted against its author: `weight` strikes (its reason's weight), active
    from created_at for the source's strike window, unless withdrawn (an undo, or a later
    decision on the item that is not a removal)."""

    author = models.ForeignKey(Author, on_delete=models.PROTECT, related_name="strikes")
    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="+")
    decision = models.OneToOneField(Decision, on_delete=models.PROTECT, related_name="strike")
    weight = models.PositiveSmallIntegerField()
    created_at = models.DateTimeField()
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    # The decision that withdrew it (an undo, an approval on re-review).
    withdrawn_by = models.ForeignKey(
        Decision, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # An author's strikes by age: the active count is one range of it, the author's
            # timeline reads it backwards.
            models.Index(fields=["author", "created_at", "id"], name="strike_author_idx")
        ]

    def __str__(self) -> str:
        return f"{self.weight} strike(s) on {self.author_id} for decision {self.decision_id}"


class AccountAction(models.Model):
    """An action on an author's account a senior confirmed: stored, and sent to the product
    as account.action.created. Created in the confirmation's transaction under the source's
    row lock, so a source's action ids commit in order (the decisions feed reads by id)."""

    class Action(models.TextChoices):
        WARN = "warn", "Warn"
        SUSPEND = "suspend", "Suspend"
        BAN = "ban", "Ban"

    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="+")
    author = models.ForeignKey(Author, on_delete=models.PROTECT, related_name="actions")
    action = models.CharField(max_length=20, choices=Action.choices)
    # A suspension's end; None for a warning or a ban.
    until = models.DateTimeField(null=True, blank=True)
    # The author's active strikes when confirmed, and the removals behind them.
    active_strikes = models.PositiveIntegerField()
    decision_ids = models.JSONField(default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    note = models.TextField(blank=True)
    # Lifted when an appeal of it was overturned: it no longer stands.
    lifted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        # The decisions feed reads a source's actions by id.
        indexes = [models.Index(fields=["source", "id"], name="account_action_source_idx")]

    def __str__(self) -> str:
        return f"{self.action} {self.author_id}"


class AccountActionProposal(models.Model):
    """An account action proposed when an author's active strikes crossed one of the
    source's thresholds (in the transaction of the removal that crossed it); a senior
    confirms it (possibly changed: an AccountAction) or dismisses it, with a note."""

    class Status(models.TextChoices):
        PROPOSED = "proposed", "Proposed"
        CONFIRMED = "confirmed", "Confirmed"
        DISMISSED = "dismissed", "Dismissed"

    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="+")
    author = models.ForeignKey(Author, on_delete=models.PROTECT, related_name="proposals")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PROPOSED)
    action = models.CharField(max_length=20, choices=AccountAction.Action.choices)
    # A suspension's length in days (None: warn, ban).
    days = models.PositiveIntegerField(null=True, blank=True)
    # The threshold crossed, the active strikes then, and the removals behind them.
    threshold = models.PositiveIntegerField()
    active_strikes = models.PositiveIntegerField()
    decision_ids = models.JSONField(default=list)
    # The removal whose strikes crossed the threshold.
    decision = models.ForeignKey(Decision, on_delete=models.PROTECT, related_name="+")
    proposed_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)
    account_action = models.OneToOneField(
        AccountAction, null=True, blank=True, on_delete=models.PROTECT, related_name="proposal"
    )

    class Meta:
        ordering = ["-id"]
        indexes = [
            # The seniors' "Accounts" list: proposals waiting.
            models.Index(fields=["id"], condition=Q(status="proposed"), name="proposal_open_idx")
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.author_id} ({self.status})"


class Appeal(models.Model):
    """A product's user asks for a second look at a removal of their item (`decision`) or at
    an account action: exactly one of the two. It waits for a senior who did not make the
    appealed decision (nor confirm the action); the outcome goes back to the product as
    appeal.decided. One appeal per removal or action: the product's `appeal_id` names it."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        UPHELD = "upheld", "Upheld"
        OVERTURNED = "overturned", "Overturned"

    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="appeals")
    # The product's id of the appeal: the same id again is the same appeal.
    appeal_id = models.CharField(max_length=255)
    webhook_id = models.CharField(max_length=255)
    # The removal appealed (and its item), or the account action appealed.
    decision = models.OneToOneField(
        Decision, null=True, blank=True, on_delete=models.PROTECT, related_name="appeal"
    )
    item = models.ForeignKey(
        Item, null=True, blank=True, on_delete=models.PROTECT, related_name="appeals"
    )
    account_action = models.OneToOneField(
        AccountAction, null=True, blank=True, on_delete=models.PROTECT, related_name="appeal"
    )
    # The reviewer whose removal is appealed (None: an automatic removal, or an account
    # action): `decision.reviewer`, which never changes, kept here so that the team page's
    # overturns per reviewer read the appeals alone, not every decision they point at.
    decision_reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    # The item's author (if it has one) or the action's: the appeal shows on their timeline.
    # No index of its own: appeal_author_idx (author, received_at, id) serves it.
    author = models.ForeignKey(
        "Author",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="appeals",
        db_index=False,
    )
    # What the user wrote (shown escaped).
    statement = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    received_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)
    # The approval an overturned removal's appeal recorded.
    result_decision = models.OneToOneField(
        Decision, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The outcome's place in the source's decisions feed (appeal.decided events): 1, 2, 3...
    # per source, given under the source's row lock as the outcome is recorded, so they
    # commit in order and the feed (keyset on it) never skips one. Appeals are decided in
    # any order, so their ids would not do.
    feed_position = models.PositiveBigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["received_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "appeal_id"], name="appeal_id_unique"),
            models.CheckConstraint(
                condition=Q(decision__isnull=False, account_action__isnull=True)
                | Q(decision__isnull=True, account_action__isnull=False),
                name="appeal_of_one_thing",
            ),
        ]
        indexes = [
            # The appeals queue: pending appeals, oldest first.
            models.Index(
                fields=["received_at", "id"], condition=Q(status="pending"), name="appeal_open_idx"
            ),
            # An author's appeals newest first (the author's timeline, keyset by time and id).
            models.Index(
                fields=["author", "received_at", "id"],
                condition=Q(author__isnull=False),
                name="appeal_author_idx",
            ),
            # The decisions feed's appeal.decided events of a source.
            models.Index(
                fields=["source", "feed_position"],
                condition=Q(feed_position__isnull=False),
                name="appeal_feed_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"appeal {self.appeal_id} ({self.status})"


REPORT_REASON_MAX = 100
REPORT_COMMENT_MAX = 5_000


class Report(models.Model):
    """A user's report of an item, as a product sent it (POST /webhooks/<slug>/reports/):
    one per (source, report_id). Open until a decision answers it (`decision`); an undo of
    that decision opens it again."""

    # No index of its own: report_id_unique (source, report_id) leads with it.
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="+", db_index=False)
    report_id = models.CharField(max_length=255)
    webhook_id = models.CharField(max_length=255)
    # No index of its own: report_item_reason_idx (item, reason) serves every lookup.
    item = models.ForeignKey(Item, on_delete=models.PROTECT, related_name="reports", db_index=False)
    reason = models.CharField(max_length=REPORT_REASON_MAX)
    # The product's id of the reporting account; "" when the report is anonymous.
    reporter_id = models.CharField(max_length=255, blank=True)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The decision that answered it (an approval or a removal); None while open. Indexed
    # only once answered (report_decision_idx): a new report writes no entry for it.
    decision = models.ForeignKey(
        Decision,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reports",
        db_index=False,
    )

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "report_id"], name="report_id_unique")
        ]
        indexes = [
            # An item's reports, open ones first read by the score; and by reason (the
            # queue's reason filter).
            models.Index(fields=["item", "reason"], name="report_item_reason_idx"),
            # A reporter's record: their decided reports, for their trust.
            models.Index(
                fields=["source", "reporter_id"],
                condition=~Q(reporter_id=""),
                name="report_reporter_idx",
            ),
            # An item's open reports by reporter: whether a reporter already counts for the
            # item, how many distinct reporters it has since its approval, and the reports a
            # decision answers, each read without the item's answered reports (a report's
            # cost stays the same however often the item was reported before).
            models.Index(
                fields=["item", "reporter_id"],
                condition=Q(decision__isnull=True),
                name="report_open_idx",
            ),
            # The reports a decision answered (an undo opens them again).
            models.Index(
                fields=["decision"],
                condition=Q(decision__isnull=False),
                name="report_decision_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"report {self.report_id} on {self.item_id}"


class Bank(models.Model):
    """A named list of known content's hashes and what a match does (issue 28). Precedence
    when an item matches several banks: allow over remove over review (ACTION_PRECEDENCE)."""

    class Action(models.TextChoices):
        REMOVE = "remove", "Remove (decided by the system, no paid label call)"
        REVIEW = "review", "Review (to the queue, marked with the bank)"
        ALLOW = "allow", "Allow (known good: never flagged)"

    name = models.CharField(max_length=100, unique=True)
    action = models.CharField(max_length=10, choices=Action.choices)
    # Media of items this bank matched is never shown to reviewers, only the match.
    restricted = models.BooleanField(default=False)
    description = models.TextField(blank=True)
    pdq_max_distance = models.PositiveSmallIntegerField(
        default=31, validators=[MaxValueValidator(31)]
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Bumped by every change of the bank's hashes or settings: each process's PDQ index
    # compares the sum over banks with the one it was built at and reloads when it moved.
    version = models.PositiveBigIntegerField(default=0)
    # Bumped when a PDQ hash of the bank was changed or deleted (not when one was added):
    # an index may take in new hashes without a rebuild only while this stays the same.
    pdq_rewrites = models.PositiveBigIntegerField(default=0, db_default=0)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


# First wins: a known-good match is never flagged, a removal beats a review.
ACTION_PRECEDENCE = (Bank.Action.ALLOW, Bank.Action.REMOVE, Bank.Action.REVIEW)


class HashType(models.TextChoices):
    MD5 = "md5", "MD5 (media bytes)"
    PDQ = "pdq", "PDQ (image, perceptual)"
    TEXT_SHA256 = "text_sha256", "SHA-256 of normalised text"


class BankHash(models.Model):
    bank = models.ForeignKey(Bank, on_delete=models.CASCADE, related_name="hashes")
    type = models.CharField(max_length=12, choices=HashType.choices)
    # Lowercase hex: 32 (md5) or 64 (pdq, text_sha256) characters.
    hash = models.CharField(max_length=64)
    note = models.CharField(max_length=500, blank=True)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The item it was banked from ("bank this"), when it was.
    item = models.ForeignKey(
        Item, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["bank", "type", "hash"], name="bank_hash_unique")
        ]
        # Exact lookups (md5, text) by value across banks.
        indexes = [models.Index(fields=["type", "hash"], name="bank_hash_lookup_idx")]

    def __str__(self) -> str:
        return f"{self.bank_id} {self.type}:{self.hash}"


class ItemHash(models.Model):
    """An item revision's hashes, computed once in the dispatch before it is labeled."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="hashes")
    revision = models.PositiveIntegerField()
    type = models.CharField(max_length=12, choices=HashType.choices)
    hash = models.CharField(max_length=64)
    # PDQ's quality (0-100) from the reference code; below 50 the hash says little.
    quality = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "revision", "type"], name="item_hash_unique")
        ]
        indexes = [
            # Retroactive matching of a new exact hash; and recent items' PDQ hashes by time.
            models.Index(fields=["type", "hash"], name="item_hash_lookup_idx"),
            models.Index(fields=["type", "created_at"], name="item_hash_recent_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.item_id} r{self.revision} {self.type}:{self.hash}"


class BankMatch(models.Model):
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="bank_matches")
    revision = models.PositiveIntegerField()
    bank = models.ForeignKey(Bank, on_delete=models.CASCADE, related_name="matches")
    type = models.CharField(max_length=12, choices=HashType.choices)
    bank_hash = models.ForeignKey(BankHash, null=True, on_delete=models.SET_NULL, related_name="+")
    # Hamming distance for PDQ; 0 for exact hashes.
    distance = models.PositiveSmallIntegerField(default=0)
    # Whether the match decided what happened to the item (the first bank by precedence),
    # and whether it was found after intake (a hash added later).
    acted = models.BooleanField(default=False)
    retroactive = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["item", "distance", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["item", "revision", "bank", "type"], name="bank_match_unique"
            )
        ]
        indexes = [models.Index(fields=["bank", "created_at"], name="bank_match_recent_idx")]

    def __str__(self) -> str:
        return f"{self.item_id} ~ {self.bank_id} ({self.type} d={self.distance})"


class ChangedItem(models.Model):
    """An item whose decisions or flag changed: the labelers' daily figures of the days its
    labels were given must be worked out again (labelers/quality/rollups.py reads these,
    recomputes those days and deletes the rows it handled). One small insert where a
    decision is made, an item flagged or edited; a plain id, no foreign key, so that the
    insert takes no lock on the item and outlives nothing it points at."""

    item_id = models.BigIntegerField()
    changed_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"item {self.item_id} changed at {self.changed_at}"


class ChangedDecidedDay(models.Model):
    """A day whose decided items changed after it was over (one of them decided again, sent
    for re-review, edited): its DecidedRollup is recounted (moderation/services/figures.py)."""

    day = models.DateField()

    def __str__(self) -> str:
        return f"decided items of {self.day} changed"


class ChangedFlaggedDay(models.Model):
    """A closed day on which an item was flagged, whose flag an edit cleared since: the
    dashboard's count of that day (labelers' DashboardRollup) is recounted. Written with
    the edit, in its transaction (moderation/services/figures.py)."""

    day = models.DateField()

    def __str__(self) -> str:
        return f"flags of {self.day} changed"


class QueueSnapshot(models.Model):
    """A source's queue as a beat task saw it once an hour (moderation/services/figures.py):
    items waiting, past the SLA, and the oldest one's wait. The queue's past cannot be
    counted from its items afterwards (they leave it), so the dashboard's 30-day charts of
    queue depth and oldest wait read these."""

    hour = models.DateTimeField()
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+")
    waiting = models.PositiveIntegerField(default=0)
    past_sla = models.PositiveIntegerField(default=0)
    # Seconds the longest-waiting item had waited (since its content arrived); None: empty.
    oldest_wait = models.PositiveIntegerField(null=True, blank=True)
    taken_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["hour", "source"], name="queue_snapshot_once_an_hour")
        ]

    def __str__(self) -> str:
        return f"{self.source_id} at {self.hour}: {self.waiting} waiting"


class DecidedRollup(models.Model):
    """The items decided on one closed UTC day (Item.decided_at) still decided, counted by
    source and by the labeler versions their current decision was made under: the re-review
    count reads one row per day instead of every decided item and its decisions."""

    day = models.DateField(unique=True)
    # [[source id, labeler versions (sorted), items], ...]
    counts = models.JSONField(default=list)
    computed_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"decided on {self.day}"


class Erasure(models.Model):
    """A product's request to erase content (POST /api/erasures/): by external ids or by an
    author id. Done by a worker (moderation/services/erasures.py); the row is its receipt.
    `erasure_id` is the product's idempotency key (or one made up): the same id again
    answers with this row, never a second erasure."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"

    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="erasures")
    erasure_id = models.CharField(max_length=255)
    # What was asked: a list of external ids, or one author id ("" when by external ids).
    external_ids = models.JSONField(default=list, blank=True)
    author_id = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    # The receipt: [{"item_id", "external_id"}], [{"item_id", "external_id", "reason"}], and
    # the external ids that named no item (already erased, or never sent).
    erased = models.JSONField(default=list, blank=True)
    held = models.JSONField(default=list, blank=True)
    not_found = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # A running erasure whose lease ran out belongs to a dead worker: the sweep resumes it.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "erasure_id"], name="erasure_id_unique")
        ]
        indexes = [
            models.Index(fields=["id"], condition=~Q(status="done"), name="erasure_open_idx")
        ]

    def __str__(self) -> str:
        return f"erasure {self.erasure_id} ({self.status})"


class Queue(models.Model):
    """A team's queue: the items the routing rules send it, reviewed by the members of its
    team (seniors and admins see every queue), with its own SLA, allowed actions and media
    settings. The default queue (one, `is_default`) holds what no rule routes; items in it
    have no queue (Item.queue empty)."""

    name = models.CharField(max_length=100, unique=True)
    # Empty: every reviewer (the default queue, as before team queues).
    team = models.ForeignKey(
        "auth.Group", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    is_default = models.BooleanField(default=False)
    # Minutes an item may wait in this queue; empty: its source's review SLA.
    sla_minutes = models.PositiveIntegerField(null=True, blank=True)
    # The decision actions its items may get (Decision.Action values); empty: all.
    allowed_actions = models.JSONField(default=list, blank=True)
    # Media in this queue is always shown grayscale / blurred, whatever the reviewer chose.
    always_grayscale = models.BooleanField(default=False)
    always_blur = models.BooleanField(default=False)
    # Media reveals per shift after which "next" serves this queue's text-only items before
    # its media (empty: the reviewer's own budget governs its items).
    exposure_budget_reveals = models.PositiveIntegerField(null=True, blank=True)
    # The audit share of the clean items routed here (empty: their labelers' shares), and
    # the chance a golden item of this queue stands in for its next item (empty: the
    # reviewer's, else the site's REVIEW_GOLDEN_SHARE).
    audit_share = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    golden_share = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)]
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-is_default", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="queue_one_default"
            )
        ]

    def __str__(self) -> str:
        return self.name

    def allows(self, action: str) -> bool:
        return not self.allowed_actions or action in self.allowed_actions


class RoutingRule(models.Model):
    """One routing rule: items matching all its conditions go to its queue. Rules are tried
    by position, the first match wins; the conditions are a JSON object (see
    moderation/routing_conditions.py for its keys)."""

    name = models.CharField(max_length=100)
    queue = models.ForeignKey(Queue, on_delete=models.PROTECT, related_name="rules")
    position = models.PositiveIntegerField(default=0)
    enabled = models.BooleanField(default=True)
    conditions = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.name


class RoutingChange(models.Model):
    """The history of the routing rules: every change, who made it, and the rules as they
    stood after it. Its highest id is the rules' version: each process keeps the rules in
    memory and reloads them when it changes (moderation/services/routing.py)."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # "create", "update", "enable", "disable", "move", "delete", "queue".
    kind = models.CharField(max_length=20)
    rule = models.ForeignKey(
        RoutingRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="changes"
    )
    rule_name = models.CharField(max_length=100, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.rule_name}"
