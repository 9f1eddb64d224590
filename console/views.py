from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from .dashboard import dashboard_days, dashboard_get


def dashboard_view(request: HttpRequest) -> HttpResponse:
    """The FinOps dashboard in the admin console (staff only: wrapped by the admin site)."""
    dashboard = dashboard_get(now=timezone.now(), days=dashboard_days(request.GET.get("days")))
    context = {
        **admin.site.each_context(request),
        "title": "FinOps dashboard",
        "dashboard": dashboard,
        # The charts want the page's width.
        "is_nav_sidebar_enabled": False,
    }
    return TemplateResponse(request, "admin/console/dashboard.html", context)
