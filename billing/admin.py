from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from finops.admin import MoneyFieldsMixin

from .budgets import limit_scope_complete
from .killswitches import kill_switch_clear, kill_switch_trip
from .models import (
    Alert,
    AlertDelivery,
    AlertMute,
    AlertRoute,
    Budget,
    FeatureCap,
    KillSwitch,
    RateLimit,
    RollupWatermark,
    UsageRollup,
)


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


_SCOPE = ("tenant", "feature", "model", "prompt_template", "user", "api_key")


class LimitScopeAdmin(MoneyFieldsMixin, admin.ModelAdmin):
    """A budget's or rate limit's scope, as both show and edit it."""

    search_fields = ("name", "tenant__slug", "feature__key", "model", "prompt_template__key",
                     "user", "api_key__prefix")  # fmt: skip
    autocomplete_fields = ("tenant", "feature", "prompt_template", "api_key")
    list_select_related = ("tenant", "feature", "prompt_template", "api_key")

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        limit_scope_complete(obj)
        super().save_model(request, obj, form, change)


@admin.register(Budget)
class BudgetAdmin(LimitScopeAdmin):
    money_fields = {"amount": "tenant.billing_currency"}
    list_display = ("__str__", *_SCOPE, "period", "amount", "thresholds", "action")
    list_filter = ("period", "action")
    fields = ("name", *_SCOPE, "period", "amount", "thresholds", "action")


@admin.register(RateLimit)
class RateLimitAdmin(LimitScopeAdmin):
    money_fields = {"cost": "tenant.billing_currency"}
    list_display = ("__str__", *_SCOPE, "window", "requests", "tokens", "cost")
    list_filter = ("window",)
    fields = ("name", *_SCOPE, "window", "requests", "tokens", "cost")


class AlertDeliveryInline(admin.TabularInline):
    model = AlertDelivery
    extra = 0
    can_delete = False
    fields = readonly_fields = ("notice", "channel", "target", "route", "status", "attempts",
                                "next_attempt_at", "sent_at", "last_error")  # fmt: skip

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Alert)
class AlertAdmin(MoneyFieldsMixin, admin.ModelAdmin):
    """Alerts are raised by the jobs: read-only here, with their deliveries."""

    money_fields = {"value": "tenant.billing_currency"}  # the spend or cost that raised it

    list_display = ("created_at", "kind", "severity", "tenant", "feature", "threshold",
                    "message", "resolved_at")  # fmt: skip
    list_filter = ("kind", "severity", ("resolved_at", admin.EmptyFieldListFilter), "created_at")
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


@admin.register(AlertRoute)
class AlertRouteAdmin(admin.ModelAdmin):
    """Where alerts go: staff routes by kind and severity (they replace the default
    settings for the kinds they name), and each tenant's own webhook or e-mails."""

    list_display = ("__str__", "tenant", "kind", "min_severity", "channel", "target")
    list_filter = ("channel", "kind", "min_severity", ("tenant", admin.EmptyFieldListFilter))
    search_fields = ("target", "tenant__slug")
    autocomplete_fields = ("tenant",)
    list_select_related = ("tenant",)


@admin.register(AlertMute)
class AlertMuteAdmin(admin.ModelAdmin):
    """A muted kind's alerts for the tenant are stored but notify nobody."""

    list_display = ("tenant", "kind", "reason", "created_at")
    list_filter = ("kind",)
    search_fields = ("tenant__slug", "reason")
    autocomplete_fields = ("tenant",)
    list_select_related = ("tenant",)


@admin.register(FeatureCap)
class FeatureCapAdmin(MoneyFieldsMixin, admin.ModelAdmin):
    money_fields = {"monthly_cap": "tenant.billing_currency"}
    list_display = ("tenant", "feature", "monthly_cap")
    search_fields = ("tenant__slug", "feature__key")
    autocomplete_fields = ("tenant", "feature")


class KillSwitchActiveFilter(admin.SimpleListFilter):
    title = "active"
    parameter_name = "active"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Active"), ("no", "Cleared")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in ("yes", "no"):
            return queryset.filter(cleared_at__isnull=self.value() == "yes")
        return queryset


class KillSwitchAddForm(forms.ModelForm):
    class Meta:
        model = KillSwitch
        fields = ("feature", "tenant", "reason")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        feature, tenant = data.get("feature"), data.get("tenant")
        active = KillSwitch.objects.filter(feature=feature, tenant=tenant, cleared_at__isnull=True)
        if feature is not None and active.exists():
            whose = tenant.slug if tenant is not None else "every tenant"
            raise forms.ValidationError(
                f"The kill switch of {feature.key} for {whose} is already active."
            )
        return data


@admin.register(KillSwitch)
class KillSwitchAdmin(admin.ModelAdmin):
    """Kill switches: tripped for one tenant's feature by the spike detection, or added
    here by staff for one tenant or, with no tenant, for every tenant. While one is
    active the guard downgrades the calls it covers; "Clear" lifts it. Rows stay as
    history."""

    list_display = ("feature", "covers", "tripped_at", "automatic", "cleared_at", "reason")
    list_filter = (KillSwitchActiveFilter, "automatic")
    search_fields = ("feature__key", "tenant__slug", "reason")
    autocomplete_fields = ("tenant", "feature")
    list_select_related = ("tenant", "feature")
    actions = ["clear"]

    @admin.display(description="tenant", ordering="tenant__slug")
    def covers(self, obj: KillSwitch) -> str:
        return obj.tenant.slug if obj.tenant_id else "every tenant"

    def get_fields(self, request: HttpRequest, obj: KillSwitch | None = None) -> Any:
        if obj is None:
            return ("feature", "tenant", "reason")
        return ("feature", "tenant", "tripped_at", "automatic", "reason", "cleared_at")

    def get_readonly_fields(self, request: HttpRequest, obj: KillSwitch | None = None) -> Any:
        return () if obj is None else self.get_fields(request, obj)

    def get_form(self, request: HttpRequest, obj: KillSwitch | None = None, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = KillSwitchAddForm
        form = super().get_form(request, obj, **kwargs)
        if obj is None:
            form.base_fields["tenant"].help_text = "Leave empty to cover every tenant."
        return form

    def save_model(self, request: HttpRequest, obj: KillSwitch, form: Any, change: bool) -> None:
        if change:
            return
        switch, tripped = kill_switch_trip(feature=obj.feature, tenant=obj.tenant,
                                           reason=obj.reason, automatic=False,
                                           now=timezone.now())  # fmt: skip
        obj.pk, obj.tripped_at, obj.automatic = switch.pk, switch.tripped_at, switch.automatic
        if not tripped:
            self.message_user(request, f"{switch} was already active.", messages.WARNING)

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.action(description="Clear", permissions=["change"])
    def clear(self, request: HttpRequest, queryset: QuerySet) -> None:
        now = timezone.now()
        switches = queryset.filter(cleared_at__isnull=True).select_related("tenant", "feature")
        cleared = sum(kill_switch_clear(switch=s, now=now) for s in switches)
        self.message_user(request, f"Cleared {cleared} kill switch(es).")
