from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from .models import RollupWatermark, UsageRollup


@admin.register(UsageRollup)
class UsageRollupAdmin(admin.ModelAdmin):
    """Aggregates are computed by the rollup job: read-only here."""

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
    list_filter = ()
    search_fields = ()
    date_hierarchy = None
    list_select_related = ()
