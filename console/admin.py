from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from finops.admin import MoneyFieldsMixin

from .models import Digest, DigestDelivery, PlannedFeature, RetirementReview
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
