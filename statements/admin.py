from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from finops.admin import MoneyFieldsMixin
from finops.models import ModelPrice
from finops.money import money_format

from .documents import line_rate, statement_download
from .models import Statement, StatementLine, VendorBill
from .reconciliation import reconciliation
from .services import reprice_open_periods, statement_verify


class StatementLineInline(MoneyFieldsMixin, admin.TabularInline):
    model = StatementLine
    money_fields = dict.fromkeys(("unit_price", "amount", "amount_exact"), "statement.currency")
    fields = ("position", "kind", "period", "description", "rate", "service_tier", "quantity",
              "unit_price", "amount", "amount_exact")  # fmt: skip
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("position",)

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="Rate")
    def rate(self, obj: StatementLine) -> str:
        return line_rate(obj) or "-"


@admin.register(Statement)
class StatementAdmin(MoneyFieldsMixin, admin.ModelAdmin):
    """Read-only: statements are drafted and finalized by their jobs."""

    list_display = ("number", "tenant", "period", "status", "total", "currency", "downloads")
    list_filter = ("status", "period")
    search_fields = ("number", "tenant__slug")
    readonly_fields = (
        "tenant", "period", "number", "status", "currency", "markup_percent", "subtotal",
        "adjustments", "markup", "total", "total_exact", "content_hash", "hash_check",
        "drafted_at", "finalized_at", "downloads",
    )  # fmt: skip
    exclude = ("created_at",)
    inlines = [StatementLineInline]
    money_fields = dict.fromkeys(
        ("subtotal", "adjustments", "markup", "total", "total_exact"), "currency"
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="Hash check")
    def hash_check(self, obj: Statement) -> str:
        if obj.status != Statement.Status.FINALIZED:
            return "draft: no hash yet"
        return "matches its lines" if statement_verify(obj) else "DOES NOT MATCH its lines"

    @admin.display(description="Download")
    def downloads(self, obj: Statement) -> str:
        return format_html(
            '<a href="{}">PDF</a> · <a href="{}">CSV</a>',
            reverse("admin:statements_statement_pdf", args=[obj.id]),
            reverse("admin:statements_statement_csv", args=[obj.id]),
        )

    def get_urls(self) -> list:
        return [
            path("<int:statement_id>/pdf/", self.admin_site.admin_view(self.pdf_view),
                 name="statements_statement_pdf"),
            path("<int:statement_id>/csv/", self.admin_site.admin_view(self.csv_view),
                 name="statements_statement_csv"),
        ] + super().get_urls()  # fmt: skip

    def pdf_view(self, request: HttpRequest, statement_id: int) -> HttpResponse:
        statement = Statement.objects.select_related("tenant").get(id=statement_id)
        return statement_download(statement, "pdf")

    def csv_view(self, request: HttpRequest, statement_id: int) -> HttpResponse:
        statement = Statement.objects.select_related("tenant").get(id=statement_id)
        return statement_download(statement, "csv")


@admin.register(VendorBill)
class VendorBillAdmin(MoneyFieldsMixin, admin.ModelAdmin):
    money_fields = {"amount": "currency"}
    list_display = ("provider", "period", "amount", "currency", "reference", "created_at")
    list_filter = ("provider", "period")

    def get_urls(self) -> list:
        view = self.admin_site.admin_view(self.reconciliation_view)
        return [
            path("reconciliation/", view, name="statements_vendorbill_reconciliation"),
            *super().get_urls(),
        ]

    def reconciliation_view(self, request: HttpRequest) -> HttpResponse:
        raw = request.GET.get("period", "")
        try:
            year, month = (int(part) for part in raw.split("-"))
            period = date(year, month, 1)
        except ValueError:
            today = timezone.now()
            previous = today.replace(day=1) - timedelta(days=1)
            period = date(previous.year, previous.month, 1)
        rows = []
        for row in reconciliation(period):
            rows.append(
                {
                    **{f: getattr(row, f) for f in row.__slots__},
                    "ledger_display": money_format(row.ledger, row.currency),
                    "billed_display": money_format(row.billed, row.currency),
                    "difference_display": money_format(row.difference, row.currency),
                }
            )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Reconciliation {period:%Y-%m}",
            "period": f"{period:%Y-%m}",
            "rows": rows,
            "tolerance": settings.FINOPS_RECONCILIATION_TOLERANCE_PERCENT,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/statements/reconciliation.html", context)


@admin.action(description="Re-price open periods for the selected models")
def reprice_open_periods_action(modeladmin: Any, request: HttpRequest, queryset: Any) -> None:
    models = set(queryset.values_list("model", flat=True))
    result = reprice_open_periods(models=models, now=timezone.now())
    currency = settings.FINOPS_DEFAULT_CURRENCY
    sign = "+" if result.delta > 0 else ""
    modeladmin.message_user(
        request,
        f"Re-priced {result.events} event(s) of {len(models)} model(s) in months without a "
        f"final statement: {money_format(result.before, currency)} -> "
        f"{money_format(result.after, currency)} ({sign}{money_format(result.delta, currency)} "
        "moved). Final statements are unchanged.",
    )


# The price table lives in the core app, which knows nothing of statements: the action
# that re-prices open months is attached to its admin here.
_price_admin = admin.site._registry[ModelPrice]
_price_admin.actions = (*(_price_admin.actions or ()), reprice_open_periods_action)
