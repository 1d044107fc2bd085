"""Forms of the reviewer pages."""

from django import forms


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
