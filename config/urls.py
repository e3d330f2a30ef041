from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from config.health import health

api_patterns = [
    path("", include("accounts.api.urls")),
    path("", include("purchases.api.urls")),
    path("mlm/", include("mlm.api.urls")),
    path("tokens/", include("tokens.api.urls")),
    path("", include("withdrawals.api.urls")),
]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False), name="home"),
    path("health/", health, name="health"),
    path("admin/", admin.site.urls),
    path("api/", include(api_patterns)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html"),  # offline
         name="api-redoc"),
]

# Errors raised outside a DRF view (no URL matched, a middleware refused): JSON under /api/.
handler400 = "common.api.bad_request"
handler403 = "common.api.permission_denied"
handler404 = "common.api.page_not_found"
handler500 = "common.api.server_error"
