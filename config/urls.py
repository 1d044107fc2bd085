"""URL routes: reviewer pages, machine endpoints (webhook, item API), admin, login."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from moderation import api, views

urlpatterns = [
    path("", views.queue, name="queue"),
    path("queue/next/", views.queue_next, name="queue_next"),
    path("items/<int:item_id>/", views.item_detail, name="item"),
    path("items/<int:item_id>/<str:kind>/", views.item_media, name="item_media"),
    path("webhooks/<slug:slug>/", api.webhook, name="webhook"),
    path("api/items/", api.api_items, name="api_items"),
    path("api/items/<int:item_id>/", api.api_item, name="api_item"),
    path("api/openapi.yaml", api.openapi_document, name="openapi"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
