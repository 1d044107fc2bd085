"""Forms of the reviewer pages."""

from django import forms
from django.contrib.auth.models import Group

from moderation.models import Queue


class LanguagesField(forms.CharField):
    """Language codes, comma-separated on the page, a list in the settings."""

    def prepare_value(self, value):
        return ", ".join(value) if isinstance(value, list | tuple) else value

    def to_python(self, value) -> list[str]:  # type: ignore[override]
        codes = [code.strip().lower() for code in (value or "").split(",") if code.strip()]
        for code in codes:
            if not (code.isascii() and code.isalpha() and 2 <= len(code) <= 8):
                raise forms.ValidationError(f"“{code[:20]}” is not a language code such as en.")
        if len(codes) > 20:
            raise forms.ValidationError("At most 20 languages.")
        return list(dict.fromkeys(codes))


class ReviewerSettingsForm(forms.Form):
    blur_media = forms.BooleanField(
        required=False, label="Blur images and videos until I reveal them (recommended)"
    )
    grayscale_media = forms.BooleanField(required=False, label="Show media in grayscale")
    autoplay_video = forms.BooleanField(required=False, label="Play videos when revealed")
    mute_video = forms.BooleanField(required=False, label="Mute videos")
    exposure_budget_reveals = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=10000,
        label="Propose a break after revealing this many items with media",
    )
    exposure_budget_minutes = forms.IntegerField(
        required=False, min_value=1, max_value=24 * 60, label="… or after this many minutes"
    )
    languages = LanguagesField(
        required=False,
        max_length=200,
        label="Languages I read (codes, comma-separated: en, pt)",
        help_text="“Next” serves items in these languages first, within your queues.",
    )


class GoldenMarkForm(forms.Form):
    """Staff, on a decided item's page: make it golden."""

    expected_action = forms.ChoiceField(
        choices=[("approve", "Approve"), ("remove", "Remove")], label="Expected action"
    )
    note = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Note for leads (why this is the answer)",
    )


class QueueForm(forms.ModelForm):
    """A team queue's settings (the routing page)."""

    team = forms.ModelChoiceField(
        queryset=Group.objects.order_by("name"),
        required=False,
        help_text="Its members are served this queue; empty: every reviewer.",
    )
    allowed_actions = forms.MultipleChoiceField(
        choices=[("approve", "Approve"), ("remove", "Remove"), ("escalate", "Escalate")],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: all actions.",
    )

    class Meta:
        model = Queue
        fields = [
            "name",
            "team",
            "sla_minutes",
            "allowed_actions",
            "always_grayscale",
            "always_blur",
            "exposure_budget_reveals",
            "audit_share",
            "golden_share",
        ]
        labels = {
            "sla_minutes": "SLA (minutes)",
            "always_grayscale": "Media always in grayscale",
            "always_blur": "Media always blurred",
        }
