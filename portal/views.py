from __future__ import annotations

from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone

from statements.documents import statement_download
from statements.models import Statement

from .models import TenantUser
from .selectors import daily_cost_chart, month_to_date

LOGIN_URL = "/portal/login/"


class PortalLoginView(LoginView):
    template_name = "portal/login.html"
    redirect_authenticated_user = True
    next_page = "/portal/"


def tenant_required(view: Any) -> Any:
    """Logged in as a tenant user; the view gets the user's tenant. Anyone else: 404."""

    @login_required(login_url=LOGIN_URL)
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        membership = TenantUser.objects.select_related("tenant").filter(user=request.user).first()
        if membership is None:
            raise Http404("Not a tenant user.")
        return view(request, membership.tenant, *args, **kwargs)

    return wrapper


@tenant_required
def home(request: HttpRequest, tenant: Any) -> HttpResponse:
    now = timezone.now()
    currency = tenant.billing_currency
    context = {
        "tenant": tenant,
        "currency": currency,
        "month": f"{now:%B %Y}",
        "month_to_date": month_to_date(tenant, now),
        "chart": daily_cost_chart(tenant, now, currency),
        "statements": Statement.objects.filter(tenant=tenant).order_by("-period"),
    }
    return render(request, "portal/home.html", context)


@tenant_required
def statement_pdf_view(request: HttpRequest, tenant: Any, statement_id: int) -> HttpResponse:
    statement = get_object_or_404(Statement.objects.select_related("tenant"), id=statement_id,
                                  tenant=tenant)  # fmt: skip
    return statement_download(statement, "pdf")


@tenant_required
def statement_csv_view(request: HttpRequest, tenant: Any, statement_id: int) -> HttpResponse:
    statement = get_object_or_404(Statement.objects.select_related("tenant"), id=statement_id,
                                  tenant=tenant)  # fmt: skip
    return statement_download(statement, "csv")
