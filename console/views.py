from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from .dashboard import dashboard_days, dashboard_get, dashboard_slice
from .quarterly import Quarter, decision_json, quarterly_charts, quarterly_report
from .quarterly_pdf import quarterly_download


def dashboard_view(request: HttpRequest) -> HttpResponse:
    """The FinOps dashboard in the admin console (staff only: wrapped by the admin site)."""
    dashboard = dashboard_get(now=timezone.now(), days=dashboard_days(request.GET.get("days")),
                              by=dashboard_slice(request.GET.get("by")))  # fmt: skip
    context = {
        **admin.site.each_context(request),
        "title": "FinOps dashboard",
        "dashboard": dashboard,
        # The charts want the page's width.
        "is_nav_sidebar_enabled": False,
    }
    return TemplateResponse(request, "admin/console/dashboard.html", context)


def _quarter(request: HttpRequest) -> tuple[Quarter, str]:
    """The quarter asked for (`?quarter=2026-Q3`), else the current one, and an error
    to show when the one asked for is not a quarter."""
    current = Quarter.of(timezone.now())
    text = request.GET.get("quarter", "")
    if not text:
        return current, ""
    try:
        return Quarter.parse(text), ""
    except ValueError as exc:
        return current, str(exc)


def quarterly_view(request: HttpRequest) -> HttpResponse:
    """The quarterly FinOps report in the admin console, with its charts."""
    quarter, error = _quarter(request)
    report = quarterly_report(quarter=quarter, now=timezone.now())
    kpis = report.kpis()
    context = {
        **admin.site.each_context(request),
        "title": f"Quarterly FinOps report, {quarter.label}",
        "report": report,
        "kpis": kpis,
        "batch_and_off_peak_saved": kpis["batch_saved"] + kpis["off_peak_saved"],
        "charts": quarterly_charts(report),
        "economics": report.economics.as_json(),
        "reach": report.reach.as_json(),
        "log": [decision_json(d) for d in report.decisions],
        "accuracy": [a.as_json() for a in report.accuracy],
        "previous": quarter.previous().label,
        "next": quarter.next().label,
        "error": error,
        "is_nav_sidebar_enabled": False,
    }
    return TemplateResponse(request, "admin/console/quarterly.html", context)


def quarterly_pdf_view(request: HttpRequest) -> HttpResponse:
    quarter, _ = _quarter(request)
    return quarterly_download(quarterly_report(quarter=quarter, now=timezone.now()))
