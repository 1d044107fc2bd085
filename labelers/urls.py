"""The admins' labeler pages, under /manage/."""

from django.urls import path

from labelers.views import dashboard, labelers

urlpatterns = [
    path("", dashboard.dashboard, name="manage_dashboard"),
    path("labelers/", labelers.labeler_list, name="manage_labelers"),
    path("labelers/new/", labelers.labeler_new, name="manage_labeler_new"),
    path("labelers/<int:labeler_id>/", labelers.labeler_detail, name="manage_labeler"),
    path("labelers/<int:labeler_id>/draft/", labelers.labeler_draft, name="manage_labeler_draft"),
    path(
        "labelers/<int:labeler_id>/publish/",
        labelers.labeler_publish,
        name="manage_labeler_publish",
    ),
    path(
        "labelers/<int:labeler_id>/policy/", labelers.labeler_policy, name="manage_labeler_policy"
    ),
    path(
        "labelers/<int:labeler_id>/relabel/",
        labelers.labeler_relabel,
        name="manage_labeler_relabel",
    ),
    path(
        "labelers/<int:labeler_id>/quality/",
        labelers.labeler_quality,
        name="manage_labeler_quality",
    ),
    path(
        "labelers/<int:labeler_id>/threshold/",
        labelers.labeler_threshold,
        name="manage_labeler_threshold",
    ),
    path(
        "labelers/<int:labeler_id>/shadow/",
        labelers.labeler_shadow,
        name="manage_labeler_shadow",
    ),
    path("shadow-runs/<int:run_id>/", labelers.shadow_run_detail, name="manage_shadow_run"),
    path(
        "shadow-runs/<int:run_id>/resume/",
        labelers.shadow_run_resume,
        name="manage_shadow_run_resume",
    ),
    path(
        "labelers/<int:labeler_id>/rereview/",
        labelers.labeler_rereview,
        name="manage_labeler_rereview",
    ),
    path("relabel-runs/", labelers.relabel_runs, name="manage_relabel_runs"),
    path("export/decisions.jsonl", labelers.export_decisions, name="manage_export_decisions"),
]
