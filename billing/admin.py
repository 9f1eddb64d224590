from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from finops.admin import MoneyFieldsMixin

from .models import Alert, AlertDelivery, Budget, FeatureCap, RollupWatermark, UsageRollup


@admin.register(UsageRollup)
class UsageRollupAdmin(MoneyFieldsMixin, admin.ModelAdmin):
    """Aggregates are computed by the rollup job: read-only here."""

    money_fields = {"cost": None, "outcome_cost": None, "session_cost": None}  # the ledger's

    list_display = (
        "grain", "period_start", "tenant", "feature", "model", "prompt_template", "calls",
        "priced_calls", "input_tokens", "output_tokens", "cost",
    )  # fmt: skip
    list_filter = ("grain", "tenant__tier")
    search_fields = ("tenant__slug", "feature", "model", "prompt_template")
    date_hierarchy = "period_start"
    list_select_related = ("tenant",)
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(RollupWatermark)
class RollupWatermarkAdmin(UsageRollupAdmin):
    list_display = ("name", "events_position", "changes_position", "updated_at")
    money_fields = {}
    list_filter = ()
    search_fields = ()
    date_hierarchy = None
    list_select_related = ()


@admin.register(Budget)
class BudgetAdmin(MoneyFieldsMixin, admin.ModelAdmin):
    money_fields = {"amount": "tenant.billing_currency"}
    list_display = ("__str__", "tenant", "feature", "model", "prompt_template", "period",
                    "amount", "thresholds", "action")  # fmt: skip
    list_filter = ("period", "action")
    search_fields = ("name", "tenant__slug", "feature__key", "model", "prompt_template__key")
    autocomplete_fields = ("tenant", "feature", "prompt_template")


class AlertDeliveryInline(admin.TabularInline):
    model = AlertDelivery
    extra = 0
    can_delete = False
    readonly_fields = ("channel", "status", "attempts", "next_attempt_at", "sent_at",
                       "last_error")  # fmt: skip

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Alert)
class AlertAdmin(MoneyFieldsMixin, admin.ModelAdmin):
    """Alerts are raised by the jobs: read-only here, with their deliveries."""

    money_fields = {"value": "tenant.billing_currency"}  # the spend or cost that raised it

    list_display = ("created_at", "kind", "tenant", "feature", "threshold", "message")
    list_filter = ("kind", "created_at")
    search_fields = ("message", "tenant__slug", "feature", "model")
    date_hierarchy = "created_at"
    inlines = [AlertDeliveryInline]
    list_select_related = ("tenant",)

    def get_readonly_fields(self, request: HttpRequest, obj: object = None) -> list[str]:
        return [f.name for f in Alert._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(FeatureCap)
class FeatureCapAdmin(MoneyFieldsMixin, admin.ModelAdmin):
    money_fields = {"monthly_cap": "tenant.billing_currency"}
    list_display = ("tenant", "feature", "monthly_cap")
    search_fields = ("tenant__slug", "feature__key")
    autocomplete_fields = ("tenant", "feature")
