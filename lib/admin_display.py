"""The admin's figures as people read them: float fields to three decimals (0.343), not as
Python spells the binary float (0.34299999999999997); and records the admin only shows."""

from __future__ import annotations

from django.contrib import admin
from django.db import models

PLACES = 3


def _rounded(field: models.Field):
    @admin.display(description=field.verbose_name, ordering=field.name)
    def show(obj):
        value = getattr(obj, field.name)
        return None if value is None else f"{value:.{PLACES}f}"

    show.__name__ = field.name
    return show


class RoundedFloatsMixin:
    """For a ModelAdmin: its float columns and read-only float fields rounded for display.
    Editable float fields keep their form input (the value an admin types stays exact)."""

    model: type[models.Model]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Built once: the change page matches its read-only fields by identity.
        self._rounded = {
            field.name: _rounded(field)
            for field in self.model._meta.fields
            if isinstance(field, models.FloatField)
        }

    def _swap(self, names):
        return [self._rounded.get(n, n) if isinstance(n, str) else n for n in names]

    def get_list_display(self, request):
        return self._swap(super().get_list_display(request))  # type: ignore[misc]

    def get_readonly_fields(self, request, obj=None):
        return self._swap(super().get_readonly_fields(request, obj))  # type: ignore[misc]

    def get_exclude(self, request, obj=None):
        # A float shown rounded read-only is not also a form field.
        readonly = super().get_readonly_fields(request, obj)  # type: ignore[misc]
        swapped = [name for name in readonly if name in self._rounded]
        return [*(super().get_exclude(request, obj) or ()), *swapped]  # type: ignore[misc]


class ReadOnlyAdmin(admin.ModelAdmin):
    """A record the admin shows and never writes: no add, change or delete, superusers
    included (has_*_permission here wins over a superuser's every permission). For what
    arrives by webhook or is written by the app's own services (decisions, the audit log)."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
