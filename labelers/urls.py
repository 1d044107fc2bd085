"""The admins' labeler pages, under /manage/."""

from django.urls import path

from labelers import views

urlpatterns = [
    path("", views.dashboard, name="manage_dashboard"),
    path("labelers/", views.labeler_list, name="manage_labelers"),
    path("labelers/new/", views.labeler_new, name="manage_labeler_new"),
    path("labelers/<int:labeler_id>/", views.labeler_detail, name="manage_labeler"),
    path("labelers/<int:labeler_id>/draft/", views.labeler_draft, name="manage_labeler_draft"),
    path(
        "labelers/<int:labeler_id>/publish/",
        views.labeler_publish,
        name="manage_labeler_publish",
    ),
    path("labelers/<int:labeler_id>/policy/", views.labeler_policy, name="manage_labeler_policy"),
    path(
        "labelers/<int:labeler_id>/relabel/",
        views.labeler_relabel,
        name="manage_labeler_relabel",
    ),
    path(
        "labelers/<int:labeler_id>/quality/",
        views.labeler_quality,
        name="manage_labeler_quality",
    ),
    path(
        "labelers/<int:labeler_id>/threshold/",
        views.labeler_threshold,
        name="manage_labeler_threshold",
    ),
    path(
        "labelers/<int:labeler_id>/shadow/",
        views.labeler_shadow,
        name="manage_labeler_shadow",
    ),
    path("shadow-runs/<int:run_id>/", views.shadow_run_detail, name="manage_shadow_run"),
    path(
        "shadow-runs/<int:run_id>/resume/",
        views.shadow_run_resume,
        name="manage_shadow_run_resume",
    ),
    path(
        "labelers/<int:labeler_id>/rereview/",
        views.labeler_rereview,
        name="manage_labeler_rereview",
    ),
    path("relabel-runs/", views.relabel_runs, name="manage_relabel_runs"),
    path("export/decisions.jsonl", views.export_decisions, name="manage_export_decisions"),
]
