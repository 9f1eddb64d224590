from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, ClassVar

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import label_for_field
from django.core.exceptions import ValidationError
from django.db.models import Count, Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.html import format_html

from .models import ApiKey, ModelPrice, PriceRate, Tenant, TierPlan
from .money import EXACT, decimal_string, money_format, money_places
from .pricing import frozen_rules, parse_price_file, prices_import
from .revenue import plan_ltv, tier_plan_check, tier_plans
from .selectors import price_is_used
from .services import apikey_create, apikey_revoke


def money_currency(obj: Model, source: str | None) -> str:
    """The currency of a money field of `obj`: `source` is an ISO code ("USD"), the dotted
    path of the object's currency ("currency", "tenant.billing_currency"), or None for
    the ledger's currency. A path that ends empty (no tenant) is the ledger's currency too."""
    if source is not None and source.isupper():
        return source
    value: Any = obj
    for part in source.split(".") if source else ():
        value = getattr(value, part, None)
    return value if isinstance(value, str) and value else settings.FINOPS_DEFAULT_CURRENCY


def _shown_exactly(amount: Decimal, currency: str) -> bool:
    step = Decimal(1).scaleb(-money_places(amount, currency))
    return amount == amount.quantize(step, context=EXACT)


def _money_displays(
    name: str, label: str, source: str | None, empty: str
) -> tuple[Callable, Callable]:
    @admin.display(description=label, ordering=name)
    def rounded(obj: Model) -> str | None:
        return money_format(getattr(obj, name), money_currency(obj, source))

    @admin.display(description=label)
    def with_exact(obj: Model) -> str | None:
        amount: Decimal | None = getattr(obj, name)
        currency = money_currency(obj, source)
        if amount is None:
            return empty  # as a field would: a display's None would read "None"
        if _shown_exactly(amount, currency):
            return money_format(amount, currency)
        return format_html('{} <span class="quiet">(exact: {})</span>',
                           money_format(amount, currency), decimal_string(amount))  # fmt: skip

    return rounded, with_exact


class MoneyFieldsMixin:
    """Money shown for people in the admin, for a `ModelAdmin` or an inline.

    `money_fields` maps each money field to its currency (see `money_currency`). Lists
    show the amount rounded by `money_format` (sorting by the field); a read-only display
    on a change page shows the rounded amount and, when it differs, the exact figure
    beside it. Editable fields keep the exact figure in their input.
    """

    money_fields: ClassVar[Mapping[str, str | None]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, source in self.money_fields.items():
            label = label_for_field(name, self.model)
            empty = self.get_empty_value_display()  # type: ignore[attr-defined]
            rounded, with_exact = _money_displays(name, label, source, empty)
            setattr(self, f"{name}_rounded", rounded)
            setattr(self, f"{name}_with_exact", with_exact)

    def get_list_display(self, request: HttpRequest) -> list:
        names = super().get_list_display(request)  # type: ignore[misc]
        return [f"{n}_rounded" if n in self.money_fields else n for n in names]

    def money_readonly(
        self, fieldsets: list, readonly: Iterable, *, all_readonly: bool
    ) -> tuple[list, list]:
        """The fieldsets and read-only names of a change page with each read-only money
        field swapped for its display (whichever way it became read-only)."""
        readonly = list(readonly)
        shown_readonly = set(readonly)
        if all_readonly:
            shown_readonly.update(admin.utils.flatten_fieldsets(fieldsets))
        swap = {n: f"{n}_with_exact" for n in self.money_fields if n in shown_readonly}

        def swapped(names: Iterable) -> list:
            return [swapped(n) if isinstance(n, list | tuple) else swap.get(n, n) for n in names]

        fieldsets = [
            (title, {**options, "fields": swapped(options["fields"])})
            for title, options in fieldsets
        ]
        return fieldsets, [swap.get(n, n) for n in readonly]

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Model | None = None,
    ) -> HttpResponse:
        form = context["adminform"]
        form.fieldsets, form.readonly_fields = self.money_readonly(
            form.fieldsets, form.readonly_fields, all_readonly=False
        )
        for formset in context["inline_admin_formsets"]:
            if isinstance(formset.opts, MoneyFieldsMixin):
                formset.fieldsets, formset.readonly_fields = formset.opts.money_readonly(
                    formset.fieldsets,
                    formset.readonly_fields,
                    all_readonly=not formset.has_change_permission,
                )
        return super().render_change_form(  # type: ignore[misc]
            request, context, add=add, change=change, form_url=form_url, obj=obj
        )


@admin.register(Tenant)
class TenantAdmin(MoneyFieldsMixin, admin.ModelAdmin):
    money_fields = {
        "monthly_cap": "billing_currency",
        "predicted_ltv": "billing_currency",
        "monthly_revenue": "billing_currency",
    }
    list_display = (
        "slug",
        "name",
        "tier",
        "status",
        "monthly_cap",
        "predicted_ltv",
        "monthly_revenue",
        "billing_currency",
        "auto_created",
        "signup_at",
    )
    list_filter = ("tier", "status", "auto_created", "billing_currency")
    search_fields = ("slug", "name")
    readonly_fields = ("auto_created", "created_at")


class TierPlanForm(forms.ModelForm):
    class Meta:
        model = TierPlan
        fields = ("tier", "monthly_price", "currency", "lifetime_months", "upgrade_rate",
                  "upgrades_to")  # fmt: skip

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not self.errors:
            try:
                tier = data.get("tier") or self.instance.tier
                tier_plan_check(TierPlan(**{**data, "tier": tier}))
            except ValidationError as exc:
                for name, errors in exc.message_dict.items():
                    self.add_error(name, errors)
        return data


@admin.register(TierPlan)
class TierPlanAdmin(MoneyFieldsMixin, admin.ModelAdmin):
    """The revenue side of unit economics (console.economics), and what a tenant's
    lifetime value is derived from when staff set none (docs/economics.md)."""

    form = TierPlanForm
    money_fields = {"monthly_price": "currency"}
    list_display = ("tier", "monthly_price", "currency", "lifetime_months", "upgrade_rate",
                    "upgrades_to", "lifetime_value", "updated_at")  # fmt: skip
    readonly_fields = ("lifetime_value", "updated_at")

    @admin.display(description="Lifetime value (derived)")
    def lifetime_value(self, plan: TierPlan) -> str | None:
        if plan.pk is None:
            return None
        return money_format(plan_ltv(plan.tier, tier_plans()), plan.currency)


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


class PriceRateInline(MoneyFieldsMixin, admin.TabularInline):
    """The row's other rates: service tiers, long prompts, off-peak hours."""

    model = PriceRate
    money_fields = {"per_million": "price.currency"}
    extra = 0
    fields = ("service_tier", "token_kind", "above_tokens", "off_peak", "per_million")

    def _editable(self, obj: ModelPrice | None) -> bool:
        return obj is None or not price_is_used(price=obj)

    def has_add_permission(self, request: HttpRequest, obj: ModelPrice | None = None) -> bool:
        return self._editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: ModelPrice | None = None) -> bool:
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: ModelPrice | None = None) -> bool:
        return self._editable(obj) and super().has_delete_permission(request, obj)


@admin.register(ModelPrice)
class ModelPriceAdmin(MoneyFieldsMixin, admin.ModelAdmin):
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
    money_fields = dict.fromkeys(
        ("input_per_million", "cached_input_per_million", "cache_write_per_million",
         "cache_write_1h_per_million", "output_per_million", "reasoning_per_million",
         "per_query"),
        "currency",
    )  # fmt: skip

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
        if obj is not None and price_is_used(price=obj):
            return [f.name for f in ModelPrice._meta.fields]
        return self.readonly_fields

    def has_delete_permission(self, request: HttpRequest, obj: ModelPrice | None = None) -> bool:
        if obj is not None and price_is_used(price=obj):
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
