"""URL routes: reviewer pages, machine endpoints (webhook, item API), admin, login."""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from config.logins import admin_site_require_otp
from moderation import api, views

if settings.OTP_REQUIRED_FOR_STAFF:
    admin_site_require_otp()

urlpatterns = [
    path("", views.queue, name="queue"),
    path("queue/next/", views.queue_next, name="queue_next"),
    path("escalated/", views.escalated_queue, name="escalated"),
    path("escalated/next/", views.escalated_next, name="escalated_next"),
    path("items/<int:item_id>/", views.item_detail, name="item"),
    path("items/<int:item_id>/release/", views.item_release, name="item_release"),
    path("items/<int:item_id>/skip/", views.item_skip, name="item_skip"),
    path("items/<int:item_id>/reveal/", views.item_reveal, name="item_reveal"),
    path("items/<int:item_id>/golden/", views.item_golden, name="item_golden"),
    path("decisions/<int:decision_id>/undo/", views.decision_undo, name="decision_undo"),
    path("me/decisions/", views.my_decisions, name="my_decisions"),
    path("me/settings/", views.my_settings, name="my_settings"),
    path("team/", views.team, name="team"),
    path("team/<int:user_id>/golden-wrong/", views.team_golden_wrong, name="team_golden_wrong"),
    path("items/<int:item_id>/<str:kind>/", views.item_media, name="item_media"),
    path("webhooks/<slug:slug>/", api.webhook, name="webhook"),
    path("api/items/", api.api_items, name="api_items"),
    path("api/items/<int:item_id>/", api.api_item, name="api_item"),
    path("api/decisions/", api.api_decisions, name="api_decisions"),
    path("api/openapi.yaml", api.openapi_document, name="openapi"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("manage/", include("labelers.urls")),
    path("admin/", admin.site.urls),
]
