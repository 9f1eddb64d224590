from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from finops.admin import MoneyFieldsMixin
from finops.money import money_format

from .decisions import DecisionResult, decision_results
from .models import (
    Digest,
    DigestDelivery,
    OptimizationDecision,
    PlannedFeature,
    ProjectionSnapshot,
    ProvisionedOffer,
    RetirementReview,
)
from .reviews import review_decide


class ReviewDecisionForm(forms.ModelForm):
    class Meta:
        model = RetirementReview
        fields = ("decision", "consolidate_into", "deprecate_on", "throttle_on", "sunset_on",
                  "note")  # fmt: skip

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        decision = cleaned.get("decision")
        kind = self.instance.kind
        if decision == RetirementReview.Decision.CONSOLIDATE and not cleaned.get(
            "consolidate_into"
        ):
            self.add_error("consolidate_into", "Name the feature it is consolidated into.")
        if decision == RetirementReview.Decision.RETIRE and kind == RetirementReview.Kind.FEATURE:
            dates = [cleaned.get(n) for n in ("deprecate_on", "throttle_on", "sunset_on")]
            if not all(dates):
                self.add_error("sunset_on", "Retiring a feature needs its three dates.")
            elif not dates[0] <= dates[1] <= dates[2]:
                self.add_error("throttle_on", "The dates go deprecate <= throttle <= sunset.")
        return cleaned


@admin.register(RetirementReview)
class RetirementReviewAdmin(MoneyFieldsMixin, admin.ModelAdmin):
    """Little-used features, prompt templates and models. Decide keep, retire (with the
    lifecycle dates) or consolidate; who and when are recorded."""

    form = ReviewDecisionForm
    money_fields = {"cost": None}  # the ledger's currency
    list_display = ("subject", "kind", "decision", "calls", "cost", "trend", "last_seen",
                    "tenant_list", "opened_at", "decided_by", "decided_at")  # fmt: skip
    list_filter = ("decision", "kind")
    search_fields = ("subject",)
    readonly_fields = ("kind", "subject", "opened_at", "window_days", "calls", "cost", "trend",
                       "calls_last_30_days", "calls_previous_30_days", "last_seen",
                       "tenant_list", "decided_by", "decided_at")  # fmt: skip
    fieldsets = (
        ("Usage over the window", {"fields": readonly_fields[:-2]}),
        ("Decision", {"fields": ("decision", "consolidate_into", "deprecate_on", "throttle_on",
                                 "sunset_on", "note", "decided_by", "decided_at")}),
    )  # fmt: skip

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Tenants")
    def tenant_list(self, obj: RetirementReview) -> str:
        return ", ".join(obj.tenants) or "-"

    def save_model(self, request: HttpRequest, obj: RetirementReview, form: Any,
                   change: bool) -> None:  # fmt: skip
        data = form.cleaned_data
        review_decide(
            review=obj, decision=data["decision"], user=request.user, now=timezone.now(),
            consolidate_into=data.get("consolidate_into"), deprecate_on=data.get("deprecate_on"),
            throttle_on=data.get("throttle_on"), sunset_on=data.get("sunset_on"),
            note=data.get("note", ""),
        )  # fmt: skip


@admin.register(PlannedFeature)
class PlannedFeatureAdmin(admin.ModelAdmin):
    """Features planned on an existing pipeline: the month-end projection adds each from
    its launch date at `multiplier` times the reused feature's daily cost."""

    list_display = ("name", "reuses", "launch_date", "multiplier", "created_at")
    autocomplete_fields = ("reuses",)
    search_fields = ("name", "reuses__key")


class DigestDeliveryInline(admin.TabularInline):
    model = DigestDelivery
    extra = 0
    can_delete = False
    fields = ("channel", "status", "attempts", "sent_at", "last_error")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Digest)
class DigestAdmin(admin.ModelAdmin):
    """The weekly reviews, as they were sent (written by the weekly-digest job)."""

    list_display = ("week_start", "summary", "created_at")
    fields = ("week_start", "created_at", "text_block")
    readonly_fields = fields
    inlines = [DigestDeliveryInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Digest")
    def summary(self, obj: Digest) -> str:
        lines = obj.text.splitlines()
        return lines[1] if len(lines) > 1 else obj.text

    @admin.display(description="Text")
    def text_block(self, obj: Digest) -> str:
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', obj.text)


def _result(obj: OptimizationDecision) -> DecisionResult:
    """The decision's measured result: set on each row of a list page at once
    (`get_changelist_instance`), measured alone on a change page."""
    result = getattr(obj, "_measured", None)
    if result is None:
        (result,) = decision_results([obj], timezone.now())
        obj._measured = result  # type: ignore[attr-defined]
    return result


@admin.register(OptimizationDecision)
class OptimizationDecisionAdmin(MoneyFieldsMixin, admin.ModelAdmin):
    """The optimization log: a decision per lever and feature with the monthly saving
    expected; finops measures the realized saving (cost per call before against after,
    at the new volume) and shows it beside the estimate (`console.decisions`)."""

    money_fields = {"expected_monthly_saving": "currency"}
    list_display = ("decided_on", "lever", "feature", "expected_monthly_saving",
                    "realized_monthly_saving", "realized_ratio", "measure_status",
                    "created_by")  # fmt: skip
    list_filter = ("lever",)
    search_fields = ("feature__key", "note")
    autocomplete_fields = ("feature",)
    fields = ("lever", "feature", "decided_on", "expected_monthly_saving", "currency", "note",
              "realized_monthly_saving", "realized_ratio", "measure_status", "cost_per_call",
              "created_by", "created_at")  # fmt: skip
    readonly_fields = ("realized_monthly_saving", "realized_ratio", "measure_status",
                       "cost_per_call", "created_by", "created_at")  # fmt: skip

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        changelist = super().get_changelist_instance(request)
        rows = list(changelist.result_list)
        for row, result in zip(rows, decision_results(rows, timezone.now()), strict=True):
            row._measured = result
        changelist.result_list = rows
        return changelist

    @admin.display(description="Realized monthly saving")
    def realized_monthly_saving(self, obj: OptimizationDecision) -> str | None:
        if obj.pk is None:
            return None
        result = _result(obj)
        return money_format(result.realized_monthly_saving, result.currency)

    @admin.display(description="Realized / expected")
    def realized_ratio(self, obj: OptimizationDecision) -> str | None:
        ratio = _result(obj).ratio if obj.pk is not None else None
        return None if ratio is None else f"{ratio * 100:.0f}%"

    @admin.display(description="Measure")
    def measure_status(self, obj: OptimizationDecision) -> str | None:
        if obj.pk is None:
            return None
        result = _result(obj)
        return f"{result.status.replace('_', ' ')} ({result.days_after} day(s) after)"

    @admin.display(description="Cost per call before / after")
    def cost_per_call(self, obj: OptimizationDecision) -> str | None:
        if obj.pk is None:
            return None
        result = _result(obj)
        before = money_format(result.cost_per_call_before, result.currency) or "-"
        after = money_format(result.cost_per_call_after, result.currency) or "-"
        return f"{before} / {after}"

    def save_model(self, request: HttpRequest, obj: OptimizationDecision, form: Any,
                   change: bool) -> None:  # fmt: skip
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(ProvisionedOffer)
class ProvisionedOfferAdmin(MoneyFieldsMixin, admin.ModelAdmin):
    """Provisioned-throughput prices staff obtained: a fixed monthly price per model for a
    capacity in tokens per minute."""

    money_fields = {"monthly_price": "currency"}
    list_display = ("model", "monthly_price", "tokens_per_minute", "note", "updated_at")
    search_fields = ("model",)


@admin.register(ProjectionSnapshot)
class ProjectionSnapshotAdmin(MoneyFieldsMixin, admin.ModelAdmin):
    """The projections kept on each month's first day (the `snapshot-projections` job),
    with the month's actual cost once it is over. Read-only: they are the record."""

    money_fields = {"projected": None, "actual": None}
    list_display = ("month", "made_on", "months_ahead", "projected", "actual")
    list_filter = ("made_on",)
    fields = ("month", "made_on", "projected", "actual")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
