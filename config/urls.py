"""The URLconf: one include() per app (each app's routes are in its urls.py), the admin
and the API schema."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from console.views import dashboard_view, quarterly_pdf_view, quarterly_view

admin.site.site_header = "finops console"
admin.site.site_title = "finops"
admin.site.index_title = "FinOps console"

handler500 = "finops.apis.server_error"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/dashboard/", admin.site.admin_view(dashboard_view), name="admin-dashboard"),
    path("admin/reports/quarterly/", admin.site.admin_view(quarterly_view), name="admin-quarterly"),
    path(
        "admin/reports/quarterly/pdf/",
        admin.site.admin_view(quarterly_pdf_view),
        name="admin-quarterly-pdf",
    ),
    path("admin/", admin.site.urls),
    path("portal/", include("portal.urls")),
    path("", include("finops.urls")),
    path("", include("ingestion.urls")),
    path("", include("billing.urls")),
    path("", include("statements.urls")),
    path("", include("console.urls")),
    path("", include("ops.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]
