from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone

from .models import RetirementReview
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
class RetirementReviewAdmin(admin.ModelAdmin):
    """Little-used features, prompt templates and models. Decide keep, retire (with the
    lifecycle dates) or consolidate; who and when are recorded."""

    form = ReviewDecisionForm
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
