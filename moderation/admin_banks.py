"""Admin pages of the hash banks (issue 28): banks with their counts, CSV import and export,
hashes, and matches (the retroactive ones on decided items are listed there for review).
Registered from moderation/admin.py."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from labelers.tasks import bank_retro_start
from lib.text import plural
from moderation.models import Bank, BankHash, BankMatch
from moderation.services.banks import BankFileInvalid, bank_export, bank_import, bank_touch


class BankImportForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="An existing bank, or a new one.")
    action = forms.ChoiceField(
        choices=[("", "(the existing bank's)"), *Bank.Action.choices], required=False
    )
    file = forms.FileField(help_text="CSV: type,hash,note (md5, pdq or text_sha256; lowercase hex)")


@admin.register(Bank)
class BankAdmin(admin.ModelAdmin):
    list_display = ("name", "action", "restricted", "pdq_max_distance", "hash_count", "week", "csv")
    list_filter = ("action", "restricted")
    search_fields = ("name",)
    readonly_fields = ("version", "created_at", "updated_at")
    change_list_template = "moderation/admin_bank_changelist.html"

    def get_queryset(self, request):
        week = timezone.now() - timedelta(days=7)
        return (
            super()
            .get_queryset(request)
            .annotate(
                n_hashes=Count("hashes", distinct=True),
                n_week=Count("matches", filter=Q(matches__created_at__gte=week), distinct=True),
            )
        )

    @admin.display(description="hashes", ordering="n_hashes")
    def hash_count(self, bank):
        return bank.n_hashes

    @admin.display(description="matches this week", ordering="n_week")
    def week(self, bank):
        return bank.n_week

    @admin.display(description="CSV")
    def csv(self, bank):
        return format_html(
            '<a href="{}">export</a>', reverse("admin:moderation_bank_export", args=[bank.pk])
        )

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        bank_touch(obj.pk)  # a changed distance or action reaches every process's index

    def get_urls(self):
        own = [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="moderation_bank_import",
            ),
            path(
                "<int:bank_id>/export/",
                self.admin_site.admin_view(self.export_view),
                name="moderation_bank_export",
            ),
        ]
        return own + super().get_urls()

    def import_view(self, request):
        if not self.has_add_permission(request):
            return redirect("admin:moderation_bank_changelist")
        form = BankImportForm(request.POST or None, request.FILES or None)
        errors: list[str] = []
        if request.method == "POST" and form.is_valid():
            try:
                text = form.cleaned_data["file"].read().decode("utf-8-sig")
                bank, added = bank_import(
                    name=form.cleaned_data["name"],
                    text=text,
                    action=form.cleaned_data["action"] or None,
                    user=request.user,
                )
            except BankFileInvalid as exc:
                errors = exc.errors
            except (UnicodeDecodeError, ValueError) as exc:
                errors = [str(exc)]
            else:
                bank_retro_start(added)
                messages.success(
                    request,
                    f"{bank.name}: {plural(len(added), 'new hash', 'new hashes')}; recent items "
                    "are being matched against them.",
                )
                return redirect("admin:moderation_bank_change", bank.pk)
        return TemplateResponse(
            request,
            "moderation/admin_bank_import.html",
            {
                **self.admin_site.each_context(request),
                "title": "Import hashes into a bank",
                "opts": self.model._meta,
                "form": form,
                "errors": errors,
            },
        )

    def export_view(self, request, bank_id: int):
        bank = get_object_or_404(Bank, pk=bank_id)
        response = HttpResponse(bank_export(bank=bank), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="bank-{bank.pk}.csv"'
        return response


@admin.register(BankHash)
class BankHashAdmin(admin.ModelAdmin):
    list_display = ("bank", "type", "hash", "note", "added_by", "added_at")
    list_filter = ("type", "bank")
    search_fields = ("=hash", "note")
    raw_id_fields = ("item",)
    readonly_fields = ("added_by", "added_at")
    list_select_related = ("bank", "added_by")

    def save_model(self, request, obj, form, change):
        obj.hash = obj.hash.strip().lower()
        if not change:
            obj.added_by = request.user
        # An edited hash may have moved from one bank to another: both indexes rebuild.
        before = BankHash.objects.filter(pk=obj.pk).values_list("bank_id", flat=True).first()
        super().save_model(request, obj, form, change)
        for bank_id in {obj.bank_id, before} - {None}:
            bank_touch(bank_id, rewrite=change)

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        bank_touch(obj.bank_id, rewrite=True)

    def delete_queryset(self, request, queryset):
        bank_ids = set(queryset.values_list("bank_id", flat=True))
        super().delete_queryset(request, queryset)
        for bank_id in bank_ids:
            bank_touch(bank_id, rewrite=True)


@admin.register(BankMatch)
class BankMatchAdmin(admin.ModelAdmin):
    """Every match; a retroactive one on an item already decided is listed here for review
    (filter: retroactive, not acted)."""

    list_display = ("item", "revision", "bank", "type", "distance", "acted", "retroactive")
    list_filter = ("retroactive", "acted", "type", "bank")
    raw_id_fields = ("item", "bank_hash")
    list_select_related = ("bank",)

    def has_add_permission(self, request):
        return False
