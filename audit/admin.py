"""The audit log in the admin: read-only for everyone (superusers too), filterable by
person, action, object and time, with a JSON Lines export of what the filters show (the
export is itself audited)."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import StreamingHttpResponse
from django.urls import path
from django.utils import timezone

from audit.models import AuditEntry
from audit.selectors import entries_jsonl
from audit.services import audit_record
from lib.admin_display import ReadOnlyAdmin


class PersonFilter(admin.SimpleListFilter):
    """Staff who acted (by the id they have; the name shown is the latest they had).
    Failed logins by unknown names are found with the search box instead."""

    title = "person"
    parameter_name = "actor_id"

    def lookups(self, request, model_admin):
        people = (
            AuditEntry.objects.filter(actor_id__isnull=False)
            .order_by("actor_id", "-seq")
            .values_list("actor_id", "actor_username")
        )
        seen: dict[int, str] = {}
        for actor_id, name in people:
            seen.setdefault(actor_id, name)
        return [(str(k), v) for k, v in sorted(seen.items(), key=lambda kv: kv[1])]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(actor_id=self.value())
        return queryset


class ActionFilter(admin.SimpleListFilter):
    title = "action"
    parameter_name = "action"

    def lookups(self, request, model_admin):
        actions = AuditEntry.objects.order_by("action").values_list("action", flat=True)
        return [(a, a) for a in actions.distinct()]

    def queryset(self, request, queryset):
        return queryset.filter(action=self.value()) if self.value() else queryset


class ObjectTypeFilter(ActionFilter):
    title = "object type"
    parameter_name = "object_type"

    def lookups(self, request, model_admin):
        types = AuditEntry.objects.exclude(object_type="").order_by("object_type")
        return [(t, t) for t in types.values_list("object_type", flat=True).distinct()]

    def queryset(self, request, queryset):
        return queryset.filter(object_type=self.value()) if self.value() else queryset


# The changelist's query parameters an export records (nothing else a URL may carry).
EXPORT_FILTERS = {"actor_id", "action", "object_type", "q"}


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    list_display = ("seq", "at", "actor_username", "ip", "action", "object_type", "object_id")
    list_filter = (PersonFilter, ActionFilter, ObjectTypeFilter, "at")
    # The object's id (with the type filter), or a name tried at a failed login.
    search_fields = ("=object_id", "actor_username")
    date_hierarchy = "at"
    list_per_page = 100
    show_full_result_count = False
    readonly_fields = [f.name for f in AuditEntry._meta.fields]
    change_list_template = "admin/audit/auditentry/change_list.html"

    # Nobody changes the log through the admin (ReadOnlyAdmin), superusers included.
    def get_urls(self):
        export = path(
            "export/",
            self.admin_site.admin_view(self.export_view),
            name="audit_auditentry_export",
        )
        return [export, *super().get_urls()]

    def export_view(self, request):
        """The rows the changelist's filters select (the same query string), as JSON Lines."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        entries = self.get_changelist_instance(request).get_queryset(request)
        shown = {
            key: value[:100]
            for key, value in request.GET.items()
            if key in EXPORT_FILTERS or key.startswith("at__")
        }
        audit_record(
            action="audit.export", actor=request.user, request=request, after={"filters": shown}
        )
        response = StreamingHttpResponse(
            entries_jsonl(entries), content_type="application/x-ndjson"
        )
        stamp = timezone.now().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.jsonl"'
        return response
