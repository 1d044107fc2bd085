"""Admin pages for labelers, versions, labels, key refusals and relabel runs."""

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from audit.services import audit_record
from labelers import tasks
from labelers.criteria import (
    REVIEW_POLICY_FIELDS,
    StaleEdit,
    draft_snapshot,
    labeler_draft_save,
    labeler_settings_changed,
    labeler_snapshot,
    labeler_stale_check,
    labeler_version_publish,
    model_warning,
)
from labelers.models import (
    ApiKeyRefusal,
    Label,
    Labeler,
    LabelerVersion,
    Reevaluation,
    RelabelRun,
)
from labelers.selectors import labeling_stalled, version_policy_lines
from lib.admin_display import RoundedFloatsMixin
from lib.text import plural


class StallWarning:
    """Admin lists about labeling say so when the dispatch has stopped (beat down, starved)."""

    def changelist_view(self, request, extra_context=None):
        if stalled := labeling_stalled():
            messages.warning(request, stalled)
        return super().changelist_view(request, extra_context)


class LabelerVersionInline(admin.TabularInline):
    model = LabelerVersion
    extra = 0
    can_delete = False
    readonly_fields = (
        "number",
        "state",
        "published_at",
        "criteria_text",
        "remote_labeler_id",
        "remote_version_id",
        "model",
        "created_at",
        "created_by",
    )

    def has_add_permission(self, request, obj=None):
        return False


class LabelerAdminForm(forms.ModelForm):
    # Empty means none sampled (as for the two thresholds, where empty means none).
    audit_share = forms.FloatField(
        required=False, help_text="0 to 1: share of unflagged items sent to review as an audit"
    )
    # The labeler as this page showed it (labeler_snapshot): the save is refused if another
    # admin changed it since, rather than overwrite their change unseen.
    seen = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.fields["seen"].initial = json.dumps(labeler_snapshot(self.instance))

    class Meta:
        model = Labeler
        # The auto-approve band is set on the labeler's page only, where widening it asks
        # first with the number of waiting items it would approve.
        fields = ("name", "slug", "kind", "active", "min_confidence", "audit_share")

    def clean(self):
        data = super().clean()
        if self.instance.pk is not None:
            self._stale_check(data.get("seen") or "")
        for name in ("min_confidence",):
            value = data.get(name)
            if value is not None and not 0.5 <= value <= 1.0:
                self.add_error(name, "Between 0.5 and 1.0 (the API's confidence range), or empty.")
        share = data.get("audit_share")
        if share is None:
            data["audit_share"] = 0.0
        elif not 0.0 <= share <= 1.0:
            self.add_error("audit_share", "Between 0 and 1.")
        return data

    def _stale_check(self, seen: str) -> None:
        """Runs in the admin's save transaction (changeform_view is atomic), so the row stays
        locked until this save commits."""
        reload = "Nothing was saved. Reload the page to see it as it is now, then change it again."
        try:
            shown = json.loads(seen)
        except ValueError:
            shown = None
        if not isinstance(shown, dict):
            raise forms.ValidationError(f"The form did not say what it showed. {reload}")
        try:
            labeler_stale_check(labeler=self.instance, seen=shown)
        except StaleEdit as exc:
            said = exc.said(reload)
            raise forms.ValidationError(said[0].upper() + said[1:]) from exc


@admin.register(Labeler)
class LabelerAdmin(RoundedFloatsMixin, admin.ModelAdmin):
    form = LabelerAdminForm
    readonly_fields = ("auto_approve_confidence",)
    list_display = (
        "name",
        "slug",
        "kind",
        "active",
        "min_confidence",
        "auto_approve_confidence",
        "audit_share",
    )
    prepopulated_fields = {"slug": ("name",)}
    inlines = [LabelerVersionInline]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        changed = {"active", *REVIEW_POLICY_FIELDS} & set(form.changed_data)
        if change and changed:
            audit_record(
                action="labeler.settings",
                actor=request.user,
                obj=obj,
                before={name: form.initial.get(name) for name in sorted(changed)},
                after={name: form.cleaned_data.get(name) for name in sorted(changed)},
            )
            # Items already in (or out of) the queue were judged under the old setting.
            reevaluation = labeler_settings_changed(
                labeler=obj, changed=changed, created_by=request.user
            )
            messages.info(
                request,
                f"Undecided items labeled by {obj.name} are being re-evaluated in the "
                f"background (re-evaluation {reevaluation.pk}, see Re-evaluations).",
            )


@admin.register(LabelerVersion)
class LabelerVersionAdmin(admin.ModelAdmin):
    """Adding here saves the labeler's draft (a new one, or edits the one there is); the
    "Publish" action, or the labeler's page under /manage/, makes it current. Published
    versions are read-only."""

    list_display = ("labeler", "number", "state", "model", "created_at", "published_at")
    list_filter = ("labeler", "state")
    fields = ("labeler", "criteria_text", "remote_labeler_id", "remote_version_id", "model")
    actions = ["publish"]

    def has_change_permission(self, request, obj=None):
        return obj is None

    def save_model(self, request, obj, form, change):
        version = labeler_draft_save(
            labeler=obj.labeler,
            criteria_text=obj.criteria_text,
            remote_labeler_id=obj.remote_labeler_id,
            remote_version_id=obj.remote_version_id,
            model=obj.model,
            created_by=request.user,
        )
        obj.pk, obj.number = version.pk, version.number
        page = reverse("manage_labeler", args=[obj.labeler_id])
        messages.info(
            request,
            format_html(
                'Saved as draft v{}: it labels nothing until published (action "Publish", '
                'or <a href="{}">the labeler\'s page</a>).',
                version.number,
                page,
            ),
        )
        if warning := model_warning(obj.model):
            messages.warning(request, warning)

    @admin.action(description="Publish: make these drafts their labeler's current version")
    def publish(self, request, queryset):
        """First a page showing each draft's text (the list does not); then publish exactly
        what that page showed: a draft edited in between is refused, not published unseen."""
        drafts = list(queryset.filter(state=LabelerVersion.State.DRAFT).select_related("labeler"))
        if "confirmed" not in request.POST:
            return TemplateResponse(
                request,
                "labelers/admin_publish_confirm.html",
                {
                    **self.admin_site.each_context(request),
                    "title": "Publish these drafts?",
                    "opts": self.model._meta,
                    "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                    "drafts": [
                        (
                            draft,
                            version_policy_lines(draft),
                            json.dumps(draft_snapshot(draft)),
                        )
                        for draft in drafts
                    ],
                },
            )
        published = 0
        for version in drafts:
            try:
                seen = json.loads(request.POST.get(f"seen_{version.pk}", ""))
            except ValueError:
                seen = None
            try:
                if not isinstance(seen, dict):
                    raise StaleEdit("the draft", [])
                labeler_version_publish(version=version, seen=seen, published_by=request.user)
            except StaleEdit:
                messages.error(
                    request,
                    f"{version.labeler.name} v{version.number} was not published: it was "
                    "edited after the confirmation page was shown. Look at it again.",
                )
                continue
            published += 1
        messages.info(
            request, f"Published {published} draft(s); nothing was relabeled (see Relabel runs)."
        )
        return None


@admin.register(Label)
class LabelAdmin(RoundedFloatsMixin, StallWarning, admin.ModelAdmin):
    list_display = (
        "item",
        "labeler_version",
        "status",
        "label",
        "confidence",
        "attempts",
        "cache_hit",
        "error",
    )
    list_filter = ("status", "cache_hit", "labeler_version__labeler", "labeled_at")
    readonly_fields = [f.name for f in Label._meta.fields]
    actions = ["resume_waiting"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="The API key is fixed: resume all waiting labels")
    def resume_waiting(self, request, queryset):
        count = tasks.labels_resume_waiting_key()
        messages.info(request, f"Re-enqueued {plural(count, 'label')}.")


@admin.register(ApiKeyRefusal)
class ApiKeyRefusalAdmin(admin.ModelAdmin):
    list_display = ("fingerprint", "refused_at")


@admin.register(RelabelRun)
class RelabelRunAdmin(StallWarning, admin.ModelAdmin):
    """Runs work in a Celery task: the page shows their state and progress while they run."""

    list_display = (
        "id",
        "labeler_version",
        "source",
        "since",
        "state",
        "total",
        "processed",
        "created",
        "progress_text",
        "created_at",
    )
    list_filter = ("state",)
    readonly_fields = (
        "state",
        "total",
        "processed",
        "created",
        "error",
        "created_by",
        "progress_text",
    )
    fields = (
        "labeler_version",
        "source",
        "since",
        "until",
        "state",
        "total",
        "processed",
        "created",
        "error",
        "created_by",
        "progress_text",
    )

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "labeler_version":
            # A draft is never labeled with: publish it first.
            kwargs["queryset"] = LabelerVersion.objects.filter(
                state=LabelerVersion.State.PUBLISHED
            ).select_related("labeler")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    @admin.display(description="progress (labels by status)")
    def progress_text(self, obj):
        if obj.pk is None:
            return "-"
        return ", ".join(f"{k}: {v}" for k, v in obj.progress().items())

    def has_change_permission(self, request, obj=None):
        return obj is None

    def save_model(self, request, obj, form, change):
        run = tasks.relabel_start(
            labeler_version=obj.labeler_version,
            source=obj.source,
            since=obj.since,
            until=obj.until,
            created_by=request.user,
        )
        obj.pk = run.pk
        messages.info(request, f"Relabel run {run.pk} queued; its progress shows here.")


@admin.register(Reevaluation)
class ReevaluationAdmin(admin.ModelAdmin):
    list_display = ("id", "reason", "state", "done", "total", "created_at", "finished_at")
    readonly_fields = [f.name for f in Reevaluation._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
