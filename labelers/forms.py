"""Forms of the admins' labeler pages (/manage/)."""

from __future__ import annotations

from typing import Any, cast

from django import forms

from labelers.client import DEPRECATED_MODELS, MEDIA_MODEL, MODELS
from labelers.models import Labeler, LabelerVersion
from labelers.shadow import SAMPLE_MAX
from moderation.models import Source


def model_choices() -> list[tuple[str, str]]:
    """The deprecation is in the option's text, so it is read when the model is picked."""
    choices = [("", f"Automatic: cope-latest for text, {MEDIA_MODEL} for images and video")]
    for model in MODELS:
        note = f" ({DEPRECATED_MODELS[model]})" if model in DEPRECATED_MODELS else ""
        choices.append((model, f"{model}{note}"))
    return choices


class PolicyForm(forms.Form):
    """What a version sends: criteria text, or a remote labeler id and version."""

    criteria_text = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 10, "cols": 80}),
        help_text="The policy in natural language (saved criteria).",
    )
    remote_labeler_id = forms.CharField(
        required=False, max_length=200, help_text="A labeler saved on the hosted API."
    )
    remote_version_id = forms.CharField(
        required=False,
        max_length=200,
        initial="latest",
        help_text='Its deployed version; "latest" follows the API side.',
    )
    model = forms.ChoiceField(required=False, choices=model_choices)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        criteria = (data.get("criteria_text") or "").strip()
        remote = (data.get("remote_labeler_id") or "").strip()
        if bool(criteria) == bool(remote):
            raise forms.ValidationError("Give either criteria text or a remote labeler id.")
        return data


class LabelerCreateForm(PolicyForm):
    name = forms.CharField(max_length=200)
    slug = forms.SlugField(max_length=100)
    kind = forms.ChoiceField(choices=Labeler.Kind.choices, widget=forms.RadioSelect)
    min_confidence = forms.FloatField(
        required=False,
        min_value=0.5,
        max_value=1.0,
        help_text='A "1" below this confidence is stored but does not flag (empty: any "1").',
    )
    field_order = ["name", "slug", "kind", "criteria_text", "remote_labeler_id"]

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"]
        if Labeler.objects.filter(slug=slug).exists():
            raise forms.ValidationError("A labeler with this slug exists.")
        return slug

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        kind = data.get("kind")
        if kind == Labeler.Kind.CRITERIA and (data.get("remote_labeler_id") or "").strip():
            raise forms.ValidationError("Saved criteria take criteria text, not a remote id.")
        if kind == Labeler.Kind.REMOTE and (data.get("criteria_text") or "").strip():
            raise forms.ValidationError("A remote labeler takes an id, not criteria text.")
        return data


class RelabelForm(forms.Form):
    scope = forms.ChoiceField(
        choices=[
            ("undecided", "Undecided items (in the queue or cleared, not yet decided)"),
            ("recent", "All items, decided ones too"),
        ],
        initial="undecided",
        widget=forms.RadioSelect,
    )
    days = forms.IntegerField(
        min_value=1, max_value=365, initial=7, label="Received in the last (days)"
    )


class ThresholdForm(forms.Form):
    # Empty: every "1" flags.
    min_confidence = forms.FloatField(required=False, min_value=0.5, max_value=1.0)


class ReviewPolicyForm(forms.Form):
    """What a labeler's answers do: flag, auto-approve, or send a sample for audit."""

    min_confidence = forms.FloatField(
        required=False,
        min_value=0.5,
        max_value=1.0,
        label="Minimum confidence to flag",
        help_text='A "1" below this confidence is stored but does not flag (empty: any "1").',
    )
    auto_approve_confidence = forms.FloatField(
        required=False,
        min_value=0.5,
        max_value=1.0,
        label="Auto-approve band",
        help_text='A "0" at or above this confidence is approved by the system, never queued, '
        "when every labeler of the item's source agrees (empty: never).",
    )
    audit_share = forms.FloatField(
        min_value=0.0,
        max_value=1.0,
        initial=0.0,
        label="Audit share",
        help_text="Share of unflagged items sent to review anyway, marked audit, so recall is "
        "measured (e.g. 0.02 for 2 %).",
    )


class VersionChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        return f"v{obj.number} ({obj.get_state_display()})"


class ShadowRunForm(forms.Form):
    """Try a version on a sample of a source's recent items (paid calls, unless cached)."""

    version = VersionChoiceField(queryset=LabelerVersion.objects.none(), empty_label=None)
    source = forms.ModelChoiceField(queryset=Source.objects.order_by("name"), empty_label=None)
    sample_size = forms.IntegerField(
        min_value=1,
        max_value=SAMPLE_MAX,
        initial=200,
        help_text="The source's most recent items; each one not answered before is one paid call.",
    )
    decided_only = forms.BooleanField(
        required=False,
        label="Only items reviewers decided (approve or remove)",
        help_text="Agreement with reviewers is measured on decided items only.",
    )

    def __init__(self, *args, labeler: Labeler, **kwargs):
        super().__init__(*args, **kwargs)
        versions = cast(forms.ModelChoiceField, self.fields["version"])
        versions.queryset = labeler.versions.order_by("-number")
        draft = labeler.draft_version
        if draft is not None:
            versions.initial = draft.pk
        sources = cast(forms.ModelChoiceField, self.fields["source"])
        # Preselect a source the labeler is routed to: its items carry the baseline's labels.
        routed = labeler.sources.order_by("name").first()
        if routed is not None:
            sources.initial = routed.pk
