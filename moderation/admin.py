"""Admin pages for sources (secrets, rotation), items and decisions."""

from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.timesince import timesince

from audit.services import audit_record
from labelers.admin import StallWarning
from labelers.selectors import source_routing_problem
from labelers.tasks import reevaluation_start, relabel_items_start
from lib.admin_display import ReadOnlyAdmin, RoundedFloatsMixin
from lib.text import plural
from moderation import admin_banks  # noqa: F401  (registers the hash banks' pages)
from moderation.callbacks.http import CallbackRefused, check_scheme
from moderation.errors import StaleRevision
from moderation.filters import int_or_none
from moderation.models import (
    AccountAction,
    Appeal,
    Author,
    CallbackAttempt,
    CallbackDelivery,
    Decision,
    DecisionReason,
    Erasure,
    GoldenAnswer,
    GoldenItem,
    Item,
    Report,
    ReviewerSettings,
    Source,
)
from moderation.selectors.decisions import item_current_decision
from moderation.selectors.queue import sources_sla
from moderation.services.authors import account_thresholds_problem
from moderation.services.decisions import decision_reason_save
from moderation.services.golden import GOLDEN_ACTIONS, golden_item_mark, golden_item_unmark
from moderation.services.retention import legal_hold_set
from moderation.services.sources import (
    source_create,
    source_rotate_secret,
    source_set_callback_secret,
)
from moderation.tasks import callbacks_redeliver


class SourceForm(forms.ModelForm):
    callback_url = forms.URLField(
        required=False,
        assume_scheme="https",
        help_text="Each decision is POSTed here, signed (see the README: Callbacks).",
    )

    class Meta:
        model = Source
        # SourceAdmin.exclude keeps the secrets out; the admin decides the fields shown.
        fields = "__all__"  # noqa: DJ007

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Left out of a form (an older one, a script posting the form): the value stays.
        self.fields["strike_window_days"].required = False
        self.fields["appeal_window_days"].required = False
        self.fields["report_return_reporters"].required = False

    def clean_strike_window_days(self):
        days = self.cleaned_data.get("strike_window_days")
        return self.instance.strike_window_days if days is None else days

    def clean_appeal_window_days(self):
        days = self.cleaned_data.get("appeal_window_days")
        return self.instance.appeal_window_days if days is None else days

    def clean_report_return_reporters(self):
        reporters = self.cleaned_data.get("report_return_reporters")
        return self.instance.report_return_reporters if reporters is None else reporters

    def clean_account_thresholds(self):
        value = self.cleaned_data.get("account_thresholds")
        if value in (None, ""):
            return []
        problem = account_thresholds_problem(value)
        if problem:
            raise forms.ValidationError(problem)
        return value

    def clean_callback_url(self):
        url = self.cleaned_data.get("callback_url", "")
        if url:
            # The same rule as at send time (where the address is checked as well).
            try:
                check_scheme(url, allow_http=settings.CALLBACK_ALLOW_HTTP)
            except CallbackRefused as exc:
                raise forms.ValidationError(str(exc)) from None
        return url


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    form = SourceForm
    list_display = (
        "name",
        "slug",
        "active",
        "routing",
        "review_sla_minutes",
        "waiting",
        "callbacks",
        "created_at",
    )
    prepopulated_fields = {"slug": ("name",)}
    filter_horizontal = ("labelers",)
    # Secrets are set by services (source_create, rotation), never shown in the admin.
    exclude = ("webhook_secret", "previous_webhook_secret", "api_token_hash", "callback_secret")
    readonly_fields = ("previous_secret_expires_at", "callback_signing", "strike_weights")
    actions = ["rotate_secret", "new_callback_secret", "callbacks_with_intake_secret"]

    @admin.display(description="strike weights")
    def strike_weights(self, obj):
        """What each removal reason counts toward the thresholds above (set per reason, for
        every source), beside the source's own window and thresholds."""
        reasons = DecisionReason.objects.filter(
            action=Decision.Action.REMOVE, active=True
        ).order_by("key", "name")
        url = reverse("admin:moderation_decisionreason_changelist") + "?action__exact=remove"
        return format_html(
            '{} (<a href="{}">edit the weights</a>)',
            ", ".join(f"{r.name}: {r.strike_weight}" for r in reasons) or "no removal reasons",
            url,
        )

    @admin.display(description="callbacks")
    def callbacks(self, obj):
        if not obj.callback_url:
            return "none"
        failed = obj.callbacks.filter(state=CallbackDelivery.State.FAILED).count()
        url = (
            reverse("admin:moderation_callbackdelivery_changelist") + f"?source__id__exact={obj.pk}"
        )
        label = f"delivery log ({failed} failed)" if failed else "delivery log"
        return format_html('<a href="{}">{}</a>', url, label)

    @admin.display(description="callback signing secret")
    def callback_signing(self, obj):
        if obj.callback_secret:
            return "its own callback secret"
        return "the source's signing secret (whsec_)"

    @admin.action(description="Sign callbacks with a new separate secret (shown once)")
    def new_callback_secret(self, request, queryset):
        for source in queryset:
            secret = source_set_callback_secret(source=source, separate=True)
            messages.warning(
                request,
                f"{source.slug}: callbacks are now signed with {secret} — copy it now, it is "
                f"not shown again.",
            )

    @admin.action(description="Sign callbacks with the source's own signing secret")
    def callbacks_with_intake_secret(self, request, queryset):
        for source in queryset:
            source_set_callback_secret(source=source, separate=False)
        messages.info(request, "Callbacks are signed with each source's signing secret.")

    @admin.display(description="waiting")
    def waiting(self, obj):
        """How many wait, the oldest's wait, and how many are past the review SLA: breaches
        show here first."""
        sla = sources_sla([obj])[0]
        if not sla.waiting.n:
            return "none"
        text = f"{sla.waiting}, oldest {timesince(sla.oldest_since)}"
        return f"{text}; ⚠ {sla.past_sla} past SLA" if sla.past_sla.n else text

    @admin.display(description="routing")
    def routing(self, obj):
        problem = source_routing_problem(obj.pk)
        return f"⚠ {problem}" if problem else "ok"

    def save_related(self, request, form, formsets, change):
        before = set(form.instance.labelers.values_list("pk", flat=True)) if change else set()
        super().save_related(request, form, formsets, change)
        source = form.instance
        after = set(source.labelers.values_list("pk", flat=True))
        if change and after != before:
            audit_record(
                action="source.routing",
                actor=request.user,
                obj=source,
                before={"labeler_ids": sorted(before)},
                after={"labeler_ids": sorted(after)},
            )
            reevaluation = reevaluation_start(
                reason=f"{source.slug}: routing changed", source=source, created_by=request.user
            )
            messages.info(
                request,
                f"Undecided items of {source.name} are being re-evaluated in the background "
                f"(re-evaluation {reevaluation.pk}, see Re-evaluations).",
            )
        if problem := source_routing_problem(source.pk):
            messages.warning(request, f"{source.name}: {problem}.")

    @admin.action(description="Rotate the signing secret (the old one stays valid for 24 hours)")
    def rotate_secret(self, request, queryset):
        for source in queryset:
            secret = source_rotate_secret(source=source, grace=timedelta(hours=24))
            audit_record(action="source.rotate_secret", actor=request.user, obj=source)
            messages.warning(
                request,
                f"{source.slug}: new signing secret {secret} — copy it now, it is not shown "
                f"again. The previous secret works until "
                f"{source.previous_secret_expires_at:%Y-%m-%d %H:%M} UTC.",
            )

    def save_model(self, request, obj, form, change):
        if change:
            if "retention_days" in form.changed_data:
                # Content is purged on this period: who changed it, and from what, is audited.
                audit_record(
                    action="source.retention",
                    actor=request.user,
                    obj=obj,
                    before={"retention_days": form.initial.get("retention_days")},
                    after={"retention_days": obj.retention_days},
                )
            return super().save_model(request, obj, form, change)
        # save_related sets the labelers again from the form: the same ones, nothing changes.
        _, secret, token = source_create(source=obj, labelers=form.cleaned_data.get("labelers", []))
        messages.warning(
            request,
            f"Copy these now, they are not shown again. Signing secret: {secret} "
            f"— API token: {token}",
        )


class DecisionInline(admin.TabularInline):
    model = Decision
    extra = 0
    can_delete = False
    readonly_fields = ("reviewer", "action", "reason", "note", "undoes", "created_at")

    def has_add_permission(self, request, obj=None):
        return False


def _vouchable(current: Decision | None) -> bool:
    return current is not None and current.action in GOLDEN_ACTIONS


class LegalHoldAdminMixin:
    """The legal hold is the one thing an admin edits on an item (and, beside the profile,
    on an author): saved through legal_hold_set, so every change is audited."""

    def legal_hold_save(self, request, obj, form) -> None:
        if not {"legal_hold", "legal_hold_reason"} & set(form.changed_data):
            return
        hold, reason = obj.legal_hold, obj.legal_hold_reason
        obj.legal_hold = form.initial.get("legal_hold", False)
        obj.legal_hold_reason = form.initial.get("legal_hold_reason", "")
        held = legal_hold_set(obj=obj, hold=hold, reason=reason, actor=request.user)
        obj.legal_hold, obj.legal_hold_reason = held.legal_hold, held.legal_hold_reason


class LegalHoldForm(forms.ModelForm):
    def clean(self):
        data = super().clean()
        if data.get("legal_hold") and not (data.get("legal_hold_reason") or "").strip():
            self.add_error("legal_hold_reason", "Say why the content is held.")
        return data


@admin.register(Item)
class ItemAdmin(LegalHoldAdminMixin, RoundedFloatsMixin, StallWarning, admin.ModelAdmin):
    form = LegalHoldForm
    list_display = ("id", "source", "external_id", "status", "violation_score", "received_at")
    # The dates and the SLA flag: the dashboard's figures link to these lists.
    list_filter = (
        "status",
        "source",
        "sla_breached",
        "received_at",
        "flagged_at",
        "legal_hold",
        "purged_at",
    )
    search_fields = ("external_id",)
    readonly_fields = [
        f.name for f in Item._meta.fields if f.name not in ("legal_hold", "legal_hold_reason")
    ]

    def save_model(self, request, obj, form, change):
        self.legal_hold_save(request, obj, form)

    inlines = [DecisionInline]
    actions = ["relabel", "mark_golden"]

    @admin.action(description="Mark as golden (expected: their current decision)")
    def mark_golden(self, request, queryset):
        """First a page showing each item's text and current decision (the list shows
        neither); then mark exactly what that page showed: an item edited or decided again in
        between is left, and said so, rather than vouched for unseen."""
        items = [(item, item_current_decision(item)) for item in queryset.select_related("source")]
        # Escalations and undecided items have no answer to vouch for.
        markable = [(item, current) for item, current in items if _vouchable(current)]
        skipped = len(items) - len(markable)
        if "confirmed" not in request.POST:
            return TemplateResponse(
                request,
                "moderation/admin_golden_confirm.html",
                {
                    **self.admin_site.each_context(request),
                    "title": "Mark these items as golden?",
                    "opts": self.model._meta,
                    "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                    "items": markable,
                    "skipped": skipped,
                },
            )
        marked, changed = 0, []
        for item, current in markable:
            revision = int_or_none(request.POST.get(f"revision_{item.pk}"))
            if revision is None or int_or_none(request.POST.get(f"decision_{item.pk}")) != (
                current.pk
            ):
                changed.append(item.pk)
                continue
            try:
                golden_item_mark(
                    item=item,
                    expected_action=current.action,
                    created_by=request.user,
                    revision=revision,
                )
            except StaleRevision:
                changed.append(item.pk)
                continue
            except ValueError:  # reopened meanwhile: no longer decided
                changed.append(item.pk)
                continue
            marked += 1
        messages.info(
            request,
            f"{plural(marked, 'item')} {'is' if marked == 1 else 'are'} golden, expecting "
            "their current decision.",
        )
        if changed:
            messages.warning(
                request,
                f"{plural(len(changed), 'item was', 'items were')} not marked: edited or "
                "decided again after the confirmation page was shown "
                f"({'item' if len(changed) == 1 else 'items'} "
                f"{', '.join(str(pk) for pk in sorted(changed))}). Look at them again.",
            )
        if skipped:
            messages.warning(
                request,
                f"{plural(skipped, 'item was', 'items were')} left alone: only decided items "
                "(approve or remove).",
            )
        return None

    @admin.action(description="Relabel with the current version of each routed labeler")
    def relabel(self, request, queryset):
        # Each item with its own source's labelers; a Celery task adds the labels, so the
        # request returns at once however many items are selected.
        ids = list(queryset.values_list("id", flat=True))
        runs = relabel_items_start(item_ids=ids, created_by=request.user)
        if not runs:
            messages.warning(request, "No active labeler is routed to these items' sources.")
        for run in runs:
            messages.info(
                request,
                f"{run.labeler_version}: relabel run {run.pk} queued for "
                f"{len(run.item_ids or [])} items (see Relabel runs).",
            )

    def has_add_permission(self, request):
        return False


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    list_display = ("item", "action", "reason", "reviewer", "created_at")
    list_filter = ("action", "created_at")
    readonly_fields = (
        "item",
        "revision",
        "reviewer",
        "action",
        "reason",
        "reason_choice",
        "note",
        "status_before",
        "undoes",
        "created_at",
    )


@admin.register(DecisionReason)
class DecisionReasonAdmin(admin.ModelAdmin):
    """The reasons reviewers pick from, each with its digit (key). Archive (active off)
    rather than delete: past decisions point at a reason, and no other reason's digit moves
    (decisions also keep the name as it read)."""

    list_display = ("name", "action", "key", "active", "strike_weight")
    list_editable = ("key", "active", "strike_weight")
    list_filter = ("action", "active")
    fields = ("action", "name", "key", "active", "strike_weight", "policy_text")

    def save_model(self, request, obj, form, change):
        decision_reason_save(reason=obj)

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ReviewerSettings)
class ReviewerSettingsAdmin(admin.ModelAdmin):
    """Which sources a reviewer may review (none: all), and their media settings."""

    list_display = ("user", "sources_shown", "blur_media", "exposure_budget_reveals")
    filter_horizontal = ("sources",)
    autocomplete_fields = ("user",)

    @admin.display(description="sources")
    def sources_shown(self, obj):
        return ", ".join(s.slug for s in obj.sources.all()) or "all"


class CallbackAttemptInline(admin.TabularInline):
    model = CallbackAttempt
    extra = 0
    can_delete = False
    fields = ("started_at", "status_code", "latency_ms", "error", "response_body", "url")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(CallbackDelivery)
class CallbackDeliveryAdmin(admin.ModelAdmin):
    """The delivery log: one row per decision sent back, its attempts inline."""

    list_display = (
        "webhook_id",
        "source",
        "state",
        "attempts",
        "last_status",
        "next_attempt_at",
        "delivered_at",
        "created_at",
    )
    list_filter = ("state", "source")
    list_select_related = ("source",)
    readonly_fields = (
        "decision",
        "account_action",
        "appeal",
        "source",
        "state",
        "attempts",
        "next_attempt_at",
        "delivered_at",
        "created_at",
    )
    exclude = ("enqueued_at", "lease_expires_at")
    inlines = [CallbackAttemptInline]
    actions = ["redeliver"]

    @admin.display(description="last answer")
    def last_status(self, obj):
        attempt = obj.attempt_log.order_by("-id").first()
        if attempt is None:
            return "-"
        return attempt.status_code or attempt.error[:80]

    @admin.action(description="Redeliver now (the same webhook-id; the retry schedule restarts)")
    def redeliver(self, request, queryset):
        ids = callbacks_redeliver(delivery_ids=list(queryset.values_list("id", flat=True)))
        skipped = queryset.count() - len(ids)
        messages.info(request, f"{len(ids)} deliveries will be sent again now.")
        if skipped:
            messages.warning(request, f"{skipped} being sent right now were left alone.")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Appeal)
class AppealAdmin(ReadOnlyAdmin):
    """Appeals, for the record: they arrive by webhook and seniors decide them on their page
    (/appeals/), so nothing here writes."""

    list_display = ("appeal_id", "source", "status", "received_at", "decided_by", "decided_at")
    list_filter = ("status", "source")
    list_select_related = ("source", "decided_by")
    search_fields = ("appeal_id",)


@admin.register(Report)
class ReportAdmin(ReadOnlyAdmin):
    """Users' reports, for the record: they arrive by webhook and are answered by the
    decisions on their items, so nothing here writes. The comment is the reporter's words:
    on the report's page only (escaped), never in the list."""

    list_display = ("report_id", "source", "item", "reason", "reporter_id", "created_at", "open")
    list_filter = ("source", "reason", ("decision", admin.EmptyFieldListFilter), "created_at")
    list_select_related = ("source", "item__source")
    search_fields = ("report_id", "reporter_id", "item__external_id")
    show_full_result_count = False

    @admin.display(boolean=True, description="open")
    def open(self, report: Report) -> bool:
        return report.decision_id is None


@admin.register(GoldenItem)
class GoldenItemAdmin(admin.ModelAdmin):
    """Golden items: decided items reviewers are tested on. Marked from an item's page or by
    the Items action (so only decided items, at their current revision); here they are
    listed, annotated and unmarked."""

    list_display = (
        "item",
        "expected_action",
        "active",
        "answered",
        "correct_share",
        "created_by",
        "created_at",
    )
    list_filter = ("active", "expected_action", "item__source")
    list_select_related = ("item__source", "created_by")
    search_fields = ("item__external_id", "note")
    fields = ("item", "revision", "expected_action", "note", "active", "created_by", "created_at")
    readonly_fields = ("item", "revision", "expected_action", "active", "created_by", "created_at")
    actions = ["unmark"]

    @admin.display(description="answered")
    def answered(self, obj):
        n = obj.answers.filter(answered_at__isnull=False).count()
        url = reverse("admin:moderation_goldenanswer_changelist") + f"?golden__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, n)

    @admin.display(description="correct")
    def correct_share(self, obj):
        answered = obj.answers.filter(answered_at__isnull=False)
        n = answered.count()
        return f"{answered.filter(correct=True).count() / n:.0%}" if n else "-"

    @admin.action(description="Unmark (stop serving; their answers stop counting)")
    def unmark(self, request, queryset):
        for golden in queryset:
            golden_item_unmark(golden=golden, by=request.user)
        messages.info(request, f"{queryset.count()} golden items unmarked.")

    def has_add_permission(self, request):
        return False


@admin.register(GoldenAnswer)
class GoldenAnswerAdmin(admin.ModelAdmin):
    """Reviewers' answers to golden items (open ones were served and not answered yet;
    action "skip": skipped or released, counted neither right nor wrong)."""

    list_display = (
        "golden",
        "reviewer",
        "action",
        "expected",
        "correct",
        "served_at",
        "answered_at",
    )
    list_filter = ("correct", "action", "reviewer")
    list_select_related = ("golden", "reviewer")
    readonly_fields = (
        "golden",
        "reviewer",
        "served_at",
        "answered_at",
        "action",
        "reason",
        "note",
        "correct",
    )

    @admin.display(description="expected")
    def expected(self, obj):
        return obj.golden.expected_action

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Author)
class AuthorAdmin(LegalHoldAdminMixin, admin.ModelAdmin):
    """Accounts as products named them; their page (timeline, strikes, actions) is linked."""

    form = LegalHoldForm
    list_display = ("external_id", "name", "source", "first_seen_at", "legal_hold", "page")
    list_filter = ("source", "legal_hold")
    list_select_related = ("source",)
    search_fields = ("external_id", "name")
    readonly_fields = ("source", "external_id", "first_seen_at", "updated_at", "erased_at")

    def save_model(self, request, obj, form, change):
        self.legal_hold_save(request, obj, form)
        super().save_model(request, obj, form, change)

    @admin.display(description="author's page")
    def page(self, obj):
        return format_html('<a href="{}">timeline</a>', reverse("author", args=[obj.pk]))


@admin.register(AccountAction)
class AccountActionAdmin(admin.ModelAdmin):
    """Confirmed account actions (sent to the products); seniors confirm them on Accounts."""

    list_display = ("id", "author", "action", "until", "active_strikes", "created_by", "created_at")
    list_filter = ("action", "source")
    list_select_related = ("author", "created_by")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Erasure)
class ErasureAdmin(ReadOnlyAdmin):
    """Products' erasure requests and their receipts (POST /api/erasures/): read only."""

    list_display = ("erasure_id", "source", "status", "author_id", "created_at", "finished_at")
    list_filter = ("status", "source")
    search_fields = ("erasure_id", "author_id")
    readonly_fields = [f.name for f in Erasure._meta.fields]
