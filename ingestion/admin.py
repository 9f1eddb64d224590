from __future__ import annotations

from datetime import UTC
from typing import Any

from django.contrib import admin
from django.db.models import Count, Max, Min, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from finops.admin import MoneyFieldsMixin

from .models import Feature, PromptTemplate, UsageEvent


@admin.register(Feature)
class FeatureAdmin(admin.ModelAdmin):
    list_display = (
        "key",
        "name",
        "status",
        "task_type",
        "default_model",
        "fallback_model",
        "workload",
        "auto_created",
    )
    list_filter = ("status", "task_type", "workload", "auto_created")
    search_fields = ("key", "name")
    readonly_fields = ("active_kill_switches", "auto_created", "created_at")

    @admin.display(description="active kill switches")
    def active_kill_switches(self, obj: Feature) -> str:
        """Staff set and clear them under Billing, Kill switches: this shows them (the
        rows are billing's, reached through their relation, not imported)."""
        if obj.pk is None:
            return "-"
        switches = obj.kill_switches.filter(cleared_at__isnull=True).select_related("tenant")
        url = reverse("admin:billing_killswitch_changelist")
        listed = format_html_join(
            "",
            "<li>for {} since {} UTC{}</li>",
            (
                (
                    s.tenant.slug if s.tenant_id else "every tenant",
                    f"{s.tripped_at.astimezone(UTC):%Y-%m-%d %H:%M}",
                    "" if s.automatic else " (set by staff)",
                )
                for s in switches
            ),
        )
        return format_html(
            '<ul>{}</ul><a href="{}?feature__id__exact={}&amp;active=yes">Kill switches</a>',
            listed or "none",
            url,
            obj.pk,
        )


@admin.register(PromptTemplate)
class PromptTemplateAdmin(admin.ModelAdmin):
    list_display = ("key", "feature", "version", "auto_created", "created_at")
    list_filter = ("auto_created",)
    search_fields = ("key", "feature__key")
    readonly_fields = ("auto_created", "created_at")


class PricedFilter(admin.SimpleListFilter):
    title = "priced"
    parameter_name = "priced"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Priced"), ("no", "Unpriced")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.filter(price__isnull=False)
        if self.value() == "no":
            return queryset.filter(price__isnull=True)
        return queryset


@admin.register(UsageEvent)
class UsageEventAdmin(MoneyFieldsMixin, admin.ModelAdmin):
    """Events are the ledger: read-only here."""

    list_display = (
        "event_id",
        "tenant",
        "timestamp",
        "feature",
        "model",
        "service_tier",
        "input_tokens",
        "output_tokens",
        "cost",
        "priced",
    )
    list_filter = (PricedFilter, "tenant_tier", "service_tier", "off_peak", "provider")
    search_fields = ("event_id", "model", "tenant__slug", "feature__key", "user", "session")
    date_hierarchy = "timestamp"
    list_select_related = ("tenant", "feature")
    show_full_result_count = False
    change_list_template = "admin/ingestion/usageevent/change_list.html"
    money_fields = {"cost": "currency", "client_cost_usd": "USD"}

    @admin.display(boolean=True)
    def priced(self, obj: UsageEvent) -> bool:
        return obj.price_id is not None

    def get_readonly_fields(self, request: HttpRequest, obj: UsageEvent | None = None) -> Any:
        return [f.name for f in UsageEvent._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: UsageEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: UsageEvent | None = None) -> bool:
        return False

    def get_urls(self) -> list:
        view = self.admin_site.admin_view(self.unpriced_models_view)
        return [
            path("unpriced-models/", view, name="ingestion_usageevent_unpriced_models"),
            *super().get_urls(),
        ]

    def unpriced_models_view(self, request: HttpRequest) -> HttpResponse:
        rows = (
            UsageEvent.objects.filter(price__isnull=True)
            .values("model", "provider")
            .annotate(events=Count("id"), first_seen=Min("timestamp"), last_seen=Max("timestamp"))
            .order_by("-events")
        )
        context = {
            **self.admin_site.each_context(request),
            "title": "Models seen without a price",
            "rows": rows,
            "opts": self.model._meta,
            "add_price_url": reverse("admin:finops_modelprice_add"),
        }
        return TemplateResponse(request, "admin/ingestion/unpriced_models.html", context)
