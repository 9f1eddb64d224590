from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from .models import ApiKey, ModelPrice, PriceRate, Tenant
from .pricing import frozen_rules, parse_price_file, prices_import
from .services import apikey_create, apikey_revoke


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = (
        "slug",
        "name",
        "tier",
        "status",
        "monthly_cap",
        "predicted_ltv",
        "billing_currency",
        "auto_created",
        "signup_at",
    )
    list_filter = ("tier", "status", "auto_created", "billing_currency")
    search_fields = ("slug", "name")
    readonly_fields = ("auto_created", "created_at")


class ApiKeyForm(forms.ModelForm):
    scope_choices = forms.MultipleChoiceField(
        label="Scopes",
        choices=ApiKey.Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[ApiKey.Scope.INGEST, ApiKey.Scope.READ],
    )

    class Meta:
        model = ApiKey
        fields = ("name", "tenant")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ("name", "prefix", "tenant", "scopes", "created_at", "revoked_at")
    list_filter = ("revoked_at", "tenant")
    search_fields = ("name", "prefix", "tenant__slug")
    actions = ("revoke",)

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> tuple:
        if obj is None:
            return ()
        return ("name", "tenant", "prefix", "scopes", "created_at", "revoked_at")

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> tuple:
        if obj is None:
            return ("name", "tenant", "scope_choices")
        return self.get_readonly_fields(request, obj)

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            return
        key, plaintext = apikey_create(
            tenant=form.cleaned_data.get("tenant"),
            scopes=form.cleaned_data["scope_choices"],
            name=form.cleaned_data.get("name", ""),
        )
        form.instance = key
        obj.pk = key.pk
        messages.warning(
            request,
            f"The new key, shown this once (only its digest is stored): {plaintext}",
        )

    def has_change_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        now = timezone.now()
        for key in queryset:
            apikey_revoke(key=key, now=now)
        self.message_user(request, f"Revoked {queryset.count()} key(s).")


class PriceFileForm(forms.Form):
    file = forms.FileField(help_text="LiteLLM's model_prices_and_context_window.json")
    effective_from = forms.DateTimeField(
        initial=timezone.now, help_text="When changed prices start (ISO 8601, UTC)."
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        upload = cleaned.get("file")
        if upload is not None:
            try:
                data = parse_price_file(upload.read())
            except (ValueError, UnicodeDecodeError) as exc:
                raise forms.ValidationError({"file": f"Not valid JSON: {exc}"}) from None
            if not isinstance(data, dict):
                raise forms.ValidationError({"file": "Expected a JSON object of model -> price."})
            cleaned["data"] = data
        return cleaned


class PriceRateInline(admin.TabularInline):
    """The row's other rates: service tiers, long prompts, off-peak hours."""

    model = PriceRate
    extra = 0
    fields = ("service_tier", "token_kind", "above_tokens", "off_peak", "per_million")

    def _editable(self, obj: ModelPrice | None) -> bool:
        return obj is None or not ModelPriceAdmin._is_used(obj)

    def has_add_permission(self, request: HttpRequest, obj: ModelPrice | None = None) -> bool:
        return self._editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: ModelPrice | None = None) -> bool:
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: ModelPrice | None = None) -> bool:
        return self._editable(obj) and super().has_delete_permission(request, obj)


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = (
        "model",
        "provider",
        "mode",
        "effective_from",
        "currency",
        "input_per_million",
        "cached_input_per_million",
        "cache_write_per_million",
        "cache_write_1h_per_million",
        "output_per_million",
        "reasoning_per_million",
        "per_query",
        "other_rates",
    )
    list_filter = ("provider", "mode", "currency")
    inlines = (PriceRateInline,)
    search_fields = ("model", "provider")
    date_hierarchy = "effective_from"
    readonly_fields = ("rules", "created_at")

    def save_model(self, request: HttpRequest, obj: ModelPrice, form: Any, change: bool) -> None:
        # The vendor's rules for its provider and model, frozen with the row.
        obj.rules = frozen_rules(obj.provider, obj.model)
        super().save_model(request, obj, form, change)

    def get_queryset(self, request: HttpRequest) -> QuerySet[ModelPrice]:
        return super().get_queryset(request).annotate(rate_count=Count("rates"))

    @admin.display(description="Other rates", ordering="rate_count")
    def other_rates(self, obj: ModelPrice) -> int:
        return getattr(obj, "rate_count", 0)

    def get_readonly_fields(self, request: HttpRequest, obj: ModelPrice | None = None) -> Any:
        # A price that has priced an event is history: a change is a new row.
        if obj is not None and self._is_used(obj):
            return [f.name for f in ModelPrice._meta.fields]
        return self.readonly_fields

    def has_delete_permission(self, request: HttpRequest, obj: ModelPrice | None = None) -> bool:
        if obj is not None and self._is_used(obj):
            return False
        return super().has_delete_permission(request, obj)

    def get_urls(self) -> list:
        view = self.admin_site.admin_view(self.import_view)
        return [path("import/", view, name="finops_modelprice_import"), *super().get_urls()]

    def import_view(self, request: HttpRequest) -> HttpResponse:
        form = PriceFileForm(request.POST or None, request.FILES or None)
        result = None
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data["data"]
            source = f"litellm upload {form.cleaned_data['file'].name}"[:200]
            outcome = prices_import(
                data=data, effective_from=form.cleaned_data["effective_from"], source=source
            )
            reasons: dict[str, int] = {}
            for reason in outcome.skipped.values():
                reasons[reason.split(" (")[0]] = reasons.get(reason.split(" (")[0], 0) + 1
            result = {
                "entries": len(data), "created": outcome.created, "changed": outcome.changed,
                "unchanged": outcome.unchanged, "skipped_count": len(outcome.skipped),
                "reasons": sorted(reasons.items(), key=lambda kv: -kv[1]),
            }  # fmt: skip
            self.message_user(request, f"Imported: {outcome.created} new models, "
                                       f"{outcome.changed} changed prices.")  # fmt: skip
        context = {
            **self.admin_site.each_context(request),
            "title": "Import LiteLLM price file",
            "form": form,
            "result": result,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/finops/import_prices.html", context)

    @staticmethod
    def _is_used(obj: ModelPrice) -> bool:
        from django.apps import apps

        # Looked up by name: the core app must not import the ingestion app.
        usage_event = apps.get_model("ingestion", "UsageEvent")
        return usage_event.objects.filter(price_id=obj.pk).exists()
