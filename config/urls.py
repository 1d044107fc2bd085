"""URL routes: reviewer pages, machine endpoints (webhook, item API), admin, login."""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from lib.logins import admin_site_require_otp

if settings.OTP_REQUIRED_FOR_STAFF:
    admin_site_require_otp()

urlpatterns = [
    path("", include("moderation.urls")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("manage/", include("labelers.urls")),
    path("admin/", admin.site.urls),
]

# Error pages in the site's frame, saying why and where to go.
handler400 = "moderation.views.errors.bad_request"
handler403 = "moderation.views.errors.permission_denied"
handler404 = "moderation.views.errors.page_not_found"
handler500 = "moderation.views.errors.server_error"
