"""Labelers, their immutable versions, labels (one per item and version), key refusals,
relabel runs."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from labelers.client import MODELS
from lib.text import plural
from moderation.models import Item


class Labeler(models.Model):
    """A policy the product labels with: saved criteria, or a labeler saved on the hosted API.

    What is sent lives in versions; a labeler's current version is its highest *published*
    number (a draft is never routed to, never labels, never decides).
    """

    class Kind(models.TextChoices):
        CRITERIA = "criteria", "Saved criteria"
        REMOTE = "remote", "Remote labeler"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.CRITERIA)
    active = models.BooleanField(default=True)
    # Optional: a "1" below this confidence is stored but does not flag the item.
    min_confidence = models.FloatField(null=True, blank=True)
    # Optional auto-approve band: a "0" at or above this confidence is approved by the system
    # (a decision with no reviewer, in the item's history) when every labeler deciding the
    # item agrees so; it never reaches the queue.
    auto_approve_confidence = models.FloatField(
        null=True,
        blank=True,
        help_text='0.5 to 1.0: a "0" this confident is approved automatically',
    )
    # Share (0 to 1) of the items this labeler did not flag that go to the queue anyway as an
    # audit sample, so that its recall is measured on real decisions.
    audit_share = models.FloatField(
        default=0.0, help_text="0 to 1: share of unflagged items sent to review as an audit"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def current_version(self) -> "LabelerVersion | None":
        return (
            self.versions.filter(state=LabelerVersion.State.PUBLISHED).order_by("-number").first()
        )

    @property
    def draft_version(self) -> "LabelerVersion | None":
        return self.versions.filter(state=LabelerVersion.State.DRAFT).order_by("-number").first()


class LabelerVersion(models.Model):
    """A snapshot of what is sent for a labeler; editing creates the next number.

    A draft (at most one per labeler) may still be edited; once published a version is
    immutable and the highest published number is the one routing uses.
    """

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"

    labeler = models.ForeignKey(Labeler, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    criteria_text = models.TextField(blank=True)
    remote_labeler_id = models.CharField(max_length=200, blank=True)
    remote_version_id = models.CharField(max_length=200, blank=True, default="latest")
    # Blank: "cope-latest" for text, MEDIA_MODEL for items with an image or a video.
    model = models.CharField(
        max_length=40, blank=True, choices=[(m, m) for m in MODELS], default=""
    )
    # Existing versions and versions made outside the draft flow are published at once.
    state = models.CharField(max_length=20, choices=State.choices, default=State.PUBLISHED)
    published_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )

    class Meta:
        ordering = ["labeler", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["labeler", "number"], name="labeler_version_unique"),
            # One draft per labeler: "edit criteria" always means that draft.
            models.UniqueConstraint(
                fields=["labeler"], condition=Q(state="draft"), name="labeler_one_draft"
            ),
            # Exactly one of criteria_text or remote_labeler_id, as the API requires.
            models.CheckConstraint(
                condition=(Q(criteria_text="") & ~Q(remote_labeler_id=""))
                | (~Q(criteria_text="") & Q(remote_labeler_id="")),
                name="labeler_version_one_policy",
            ),
        ]

    def __str__(self) -> str:
        draft = " (draft)" if self.state == self.State.DRAFT else ""
        return f"{self.labeler.name} v{self.number}{draft}"

    @property
    def is_draft(self) -> bool:
        return self.state == self.State.DRAFT


class Label(models.Model):
    """One labeler version's answer for one item, with how it was obtained.

    The row exists from intake on (status PENDING); the database, not the broker, is the
    record of which labels are still to be fetched.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        WAITING_KEY = "waiting_key", "Waiting for API key"
        FAILED = "failed", "Failed (needs a person)"
        FAILED_TRANSIENT = "failed_transient", "Failed (will retry later)"
        SUPERSEDED = "superseded", "Not sent: the item was edited"

    # No index of its own: label_once_per_revision's starts with the item. Each index is
    # written at every claim and every answer (both change the status: no HOT update).
    item = models.ForeignKey(
        "moderation.Item", on_delete=models.CASCADE, related_name="labels", db_index=False
    )
    # The item revision labeled (moderation.Item.revision).
    revision = models.PositiveIntegerField(default=1)
    labeler_version = models.ForeignKey(
        LabelerVersion, on_delete=models.PROTECT, related_name="labels"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    label = models.CharField(max_length=1, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    violation_score = models.FloatField(null=True, blank=True)
    compute_time = models.FloatField(null=True, blank=True)
    model = models.CharField(max_length=40, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    cache_hit = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    # Copied from the item so identical content is found without a join (cost guard).
    # Indexed by label_content_hash_idx (db_index would add a second, LIKE-pattern index).
    content_hash = models.CharField(max_length=64)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # The worker process running it (labelers/liveness.py): when that worker's heartbeat
    # stops, the dispatch takes the label back at once instead of waiting for the lease.
    worker = models.CharField(max_length=200, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    # Relabel work: sent by the sweep only while the broker's labels queue is short, so a
    # backlog never sits in front of a fresh item (the database keeps the rest in line).
    bulk = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    labeled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["item", "revision", "labeler_version"], name="label_once_per_revision"
            )
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="label_status_next_idx"),
            models.Index(
                fields=["content_hash", "labeler_version", "model"],
                condition=Q(status="done"),
                name="label_cache_idx",
            ),
            # The claim's lookups of identical labels in flight or open.
            models.Index(fields=["content_hash"], name="label_content_hash_idx"),
            # Labels given today and this week (the admins' dashboard). "labeled_at is not
            # null" (implied by any range of days) keeps it out of the claim's lookup of an
            # identical done label, whose prepared plan, made while few labels were done,
            # would otherwise scan it whole instead of label_cache_idx.
            models.Index(
                fields=["labeled_at"],
                condition=Q(status="done", labeled_at__isnull=False),
                name="label_done_labeled_at_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.labeler_version} on item {self.item_id}: {self.status} {self.label}"


class ApiKeyRefusal(models.Model):
    """The API refused this key (401): nothing is sent with it until it changes or an admin
    says it is fixed. Only a SHA-256 fingerprint of the key is stored."""

    fingerprint = models.CharField(max_length=64, unique=True)
    refused_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"key {self.fingerprint[:8]}… refused at {self.refused_at:%Y-%m-%d %H:%M}"


class DispatchHeartbeat(models.Model):
    """When beat's dispatch (the sweep) last ran: one row, so pages can say labeling is
    stalled (beat stopped, or the sweep starved) instead of showing an empty, calm queue."""

    ran_at = models.DateTimeField()
    # Since when the dispatch has run without a gap: a worker is declared dead only after
    # the dispatch (and so the database) has been up longer than the heartbeat timeout, so
    # that a database outage, which stops every heartbeat, never makes all workers "dead".
    running_since = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"dispatch ran at {self.ran_at:%Y-%m-%d %H:%M:%S}"


class WorkerHeartbeat(models.Model):
    """A Celery worker process, alive as of `seen_at` (written every few seconds by the
    worker itself), and the labels whose messages it held then (received, not finished).
    A worker killed with -9 stops writing: the dispatch then takes back its running labels
    and sends its held ones again, instead of waiting for their leases and Redis's
    visibility timeout."""

    name = models.CharField(max_length=200, unique=True)
    seen_at = models.DateTimeField()
    holding = models.JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return f"worker {self.name} seen at {self.seen_at:%Y-%m-%d %H:%M:%S}"


class RelabelRun(models.Model):
    """A request to label a selection of items with one labeler version.

    Idempotent and resumable: running it again only adds the labels still missing, and the
    labels it created are ordinary pending work that the sweep keeps alive. A Celery task
    does the work (state queued -> running -> done), never the web request.
    """

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Adding labels"
        DONE = "done", "Labels added"
        FAILED = "failed", "Failed"

    labeler_version = models.ForeignKey(LabelerVersion, on_delete=models.PROTECT)
    source = models.ForeignKey(
        "moderation.Source", null=True, blank=True, on_delete=models.SET_NULL
    )
    since = models.DateTimeField(null=True, blank=True)
    until = models.DateTimeField(null=True, blank=True)
    item_ids = models.JSONField(null=True, blank=True)  # an explicit selection (admin action)
    total = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)  # labels this run added
    state = models.CharField(max_length=20, choices=State.choices, default=State.QUEUED)
    processed = models.PositiveIntegerField(default=0)  # selected items looked at so far
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Moves with each batch: a running run that stopped moving lost its worker.
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )

    def __str__(self) -> str:
        return f"relabel with {self.labeler_version} ({plural(self.total, 'item')})"

    def selection(self):
        # Items whose content was purged or erased have nothing left to label.
        items = Item.objects.filter(purged_at__isnull=True)
        if self.item_ids is not None:
            items = items.filter(pk__in=self.item_ids)
        if self.source_id:
            items = items.filter(source_id=self.source_id)
        if self.since:
            items = items.filter(received_at__gte=self.since)
        if self.until:
            items = items.filter(received_at__lt=self.until)
        return items

    def progress(self) -> dict[str, int]:
        labels = Label.objects.filter(
            labeler_version=self.labeler_version, item__in=self.selection()
        )
        counts = dict(labels.values_list("status").annotate(n=models.Count("id")))
        return {"total": self.total, **counts}


class Reevaluation(models.Model):
    """Undecided items whose verdict a change may alter (a labeler's threshold or active flag,
    a source's routing), recomputed in the background from the labels they have; no label is
    fetched for it. Progress is visible in the admin."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"

    reason = models.CharField(max_length=200)
    labeler = models.ForeignKey(Labeler, null=True, blank=True, on_delete=models.SET_NULL)
    source = models.ForeignKey(
        "moderation.Source", null=True, blank=True, on_delete=models.SET_NULL
    )
    state = models.CharField(max_length=20, choices=State.choices, default=State.QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )

    def __str__(self) -> str:
        return f"re-evaluation {self.pk}: {self.reason} ({self.done}/{self.total})"


class ShadowRun(models.Model):
    """A version (usually a draft) tried on a sample of a source's recent items, beside the
    published version, in the background. Its answers are ShadowLabels: they never change an
    item's status, verdict or the queue. The policy is copied at start, so editing the draft
    afterwards does not change what the run measured."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    version = models.ForeignKey(
        LabelerVersion, on_delete=models.CASCADE, related_name="shadow_runs"
    )
    # The published version it is compared with (the labeler's current one at start).
    baseline = models.ForeignKey(
        LabelerVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.ForeignKey("moderation.Source", on_delete=models.CASCADE, related_name="+")
    sample_size = models.PositiveIntegerField(default=200)
    decided_only = models.BooleanField(default=False)
    criteria_text = models.TextField(blank=True)
    remote_labeler_id = models.CharField(max_length=200, blank=True)
    remote_version_id = models.CharField(max_length=200, blank=True)
    model = models.CharField(max_length=40, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.QUEUED)
    item_ids = models.JSONField(default=list, blank=True)  # the sample, fixed at start
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"shadow run {self.pk} of {self.version} on {self.source_id}"


class ShadowLabel(models.Model):
    """One shadow run's answer for one item (or why there is none)."""

    class Status(models.TextChoices):
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    run = models.ForeignKey(ShadowRun, on_delete=models.CASCADE, related_name="labels")
    item = models.ForeignKey("moderation.Item", on_delete=models.CASCADE, related_name="+")
    revision = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=20, choices=Status.choices)
    label = models.CharField(max_length=1, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    violation_score = models.FloatField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    # Answered from an earlier run's label of the same content and policy: no call paid.
    cache_hit = models.BooleanField(default=False)
    content_hash = models.CharField(max_length=64)
    # SHA-256 of the policy sent (criteria or remote id + version, and model): a reused
    # answer must come from the very same policy, not merely the same draft row.
    policy_hash = models.CharField(max_length=64)
    error = models.TextField(blank=True)
    labeled_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "item"], name="shadow_label_once_per_run")
        ]
        indexes = [
            models.Index(
                fields=["content_hash", "policy_hash"],
                condition=Q(status="done"),
                name="shadow_label_cache_idx",
            )
        ]

    def __str__(self) -> str:
        return f"shadow {self.run_id} on {self.item_id}: {self.status} {self.label}"


class QualityRollup(models.Model):
    """A version's quality figures for one closed UTC day (labels answered that day), in
    counts that add up across days: the quality page reads one row per day instead of every
    label. Kept by labelers/quality/rollups.py; a day touched later (a decision, an undo,
    an item flagged or edited) is recomputed from its rows.

    `min_confidence`: the labeler's minimum confidence the flags were counted at; a row
    counted at another one is stale and not used."""

    version = models.ForeignKey(LabelerVersion, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    # None: the whole day, counted once it was over. Else the labels answered that day
    # before this moment (today's, recounted every run): never part of the running chain.
    through = models.DateTimeField(null=True, blank=True)
    min_confidence = models.FloatField(null=True, blank=True)
    # figures.DayCounts, in three parts: the day's small counts (cells, calls, cache hits);
    # its histograms ([value, count]: latencies, confidences of "1"s); and the histograms of
    # every day up to this one (running), so that a window's histograms are two rows'
    # difference instead of the sum of one row per day.
    counts = models.JSONField(default=dict)
    histograms = models.JSONField(default=dict)
    running = models.JSONField(default=dict)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["version", "day"], name="quality_rollup_once_a_day")
        ]

    def __str__(self) -> str:
        return f"{self.version} on {self.day}"


class DashboardRollup(models.Model):
    """The dashboard's activity figures of one source on one closed UTC day: items received
    (received_at), done labels given (labeled_at, by their item's source), items flagged
    (flagged_at), decisions by people and by the system (created_at; undos are not
    decisions), and people's decisions per reviewer. The dashboard reads one row per source
    and day instead of the rows counted; today from its partial row and the minutes since.
    Kept by
    labelers/dashboard_rollups.py; a day whose figures change after it closed (an edit
    clears its item's flag) is recounted from its rows."""

    day = models.DateField()
    # None: the whole day, counted once it was over. Else today's rows stored before this
    # moment (recounted every few minutes): the page counts only the rows after it.
    through = models.DateTimeField(null=True, blank=True)
    source = models.ForeignKey("moderation.Source", on_delete=models.CASCADE, related_name="+")
    received = models.PositiveIntegerField(default=0, db_default=0)
    labeled = models.PositiveIntegerField(default=0, db_default=0)
    flagged = models.PositiveIntegerField(default=0, db_default=0)
    decided_by_people = models.PositiveIntegerField(default=0, db_default=0)
    decided_automatically = models.PositiveIntegerField(default=0, db_default=0)
    # {reviewer id (a string, JSON's keys): people's decisions that day}
    reviewers = models.JSONField(default=dict, blank=True)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "source"], name="dashboard_rollup_once_a_day")
        ]

    def __str__(self) -> str:
        return f"{self.source_id} on {self.day}"
