"""Shapes of the management API (operator keys with the `manage` scope): tenants, API
keys, prices and tier plans."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import ApiKey, ModelPrice, PriceRate, Tenant, TierPlan
from .money import decimal_string
from .serializers import StrictFieldsMixin, StrictQuery, StrictSerializer


class DecimalString(serializers.DecimalField):
    """An exact decimal in, a plain decimal string out (`"500"`, `"0.0105"`)."""

    def to_representation(self, value: Any) -> str | None:
        if value is None:
            return None
        return decimal_string(value if isinstance(value, Decimal) else Decimal(str(value)))


class AwareDateTimeField(serializers.DateTimeField):
    """An RFC 3339 instant; a time without a UTC offset is refused, not guessed."""

    default_error_messages = {"naive": "Give a UTC offset (e.g. Z or +00:00)."}

    def to_internal_value(self, value: Any) -> datetime:
        if isinstance(value, str):
            try:
                parsed = parse_datetime(value.strip())
            except ValueError:
                parsed = None
            if parsed is not None and parsed.tzinfo is None:
                self.fail("naive")
        return super().to_internal_value(value)


CURRENCY = dict(  # noqa: C408 - field keyword arguments
    regex=r"^[A-Z]{3}$",
    max_length=3,
    error_messages={"invalid": "Three capital letters (ISO 4217)."},
)


def parse_month(value: str) -> date:
    """`YYYY-MM` as the first day of the month, or a ValidationError."""
    try:
        year, month = (int(part) for part in value.split("-"))
        first = date(year, month, 1)
    except (ValueError, TypeError):
        raise serializers.ValidationError("Use YYYY-MM.") from None
    if first.year == date.max.year:  # a month whose end the calendar cannot hold
        raise serializers.ValidationError(f"Use a month before {date.max.year}-01.")
    return first


@extend_schema_field(
    {"type": "string", "pattern": r"^\d{4}-(0[1-9]|1[0-2])$", "example": "2025-01"}
)
class MonthField(serializers.Field):
    """A calendar month, `YYYY-MM`, as the date of its first day."""

    default_error_messages = {"invalid": "Use YYYY-MM."}
    _pattern = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")

    def to_internal_value(self, data: Any) -> date:
        if not isinstance(data, str) or not self._pattern.match(data):
            self.fail("invalid")
        return parse_month(data)

    def to_representation(self, value: date) -> str:
        return f"{value:%Y-%m}"


# --- Tenants ---------------------------------------------------------------------------

_AMOUNT = dict(max_digits=20, decimal_places=6, min_value=Decimal(0), allow_null=True)  # noqa: C408


class TenantSerializer(serializers.ModelSerializer):
    # A plain string in the schema: the choice set is documented once, on the update.
    status = serializers.CharField(help_text="active, suspended or closed.")
    monthly_cap = DecimalString(max_digits=20, decimal_places=6, allow_null=True)
    predicted_ltv = DecimalString(max_digits=20, decimal_places=6, allow_null=True)
    monthly_revenue = DecimalString(max_digits=20, decimal_places=6, allow_null=True)
    markup_percent = DecimalString(max_digits=7, decimal_places=3)

    class Meta:
        model = Tenant
        fields = ["slug", "name", "tier", "status", "billing_currency", "signup_at",
                  "monthly_cap", "predicted_ltv", "monthly_revenue", "markup_percent",
                  "cap_override_until", "auto_created", "created_at"]  # fmt: skip
        read_only_fields = fields


class TenantUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    tier = serializers.ChoiceField(choices=Tenant.Tier.choices)
    status = serializers.ChoiceField(choices=Tenant.Status.choices)
    billing_currency = serializers.RegexField(**CURRENCY)
    signup_at = AwareDateTimeField()
    monthly_cap = DecimalString(**_AMOUNT, help_text="Contractual monthly cap; null: no cap.")
    predicted_ltv = DecimalString(
        **_AMOUNT, help_text="Predicted lifetime value; null: derived from the tier plans."
    )
    monthly_revenue = DecimalString(
        **_AMOUNT,
        help_text="What the tenant pays per month, in its billing currency; null: its tier "
        "plan's price.",
    )
    markup_percent = DecimalString(
        max_digits=7, decimal_places=3, min_value=Decimal(-100), max_value=Decimal(1000)
    )
    cap_override_until = AwareDateTimeField(
        allow_null=True, help_text="The monthly cap is not enforced until this instant."
    )


class TenantCreateSerializer(TenantUpdateSerializer):
    slug = serializers.RegexField(
        r"^[a-z0-9][a-z0-9_-]{0,62}$",
        max_length=63,
        error_messages={"invalid": "1-63 lower-case letters, digits, '-' or '_', starting "
                                   "with a letter or digit."},
    )  # fmt: skip

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        for name, field in fields.items():
            if name not in ("slug",):
                field.required = False
        # A new tenant is active; status and the cap override are changed later.
        fields.pop("status")
        fields.pop("cap_override_until")
        return fields

    def validate_slug(self, value: str) -> str:
        if Tenant.objects.filter(slug=value).exists():
            raise serializers.ValidationError("A tenant with this slug exists.")
        return value


class TenantQuerySerializer(StrictQuery):
    tier = serializers.ChoiceField(choices=Tenant.Tier.choices, required=False)
    status = serializers.ChoiceField(choices=Tenant.Status.choices, required=False)


# --- Tier plans ------------------------------------------------------------------------


class TierPlanSerializer(serializers.ModelSerializer):
    monthly_price = DecimalString(max_digits=20, decimal_places=6)
    upgrade_rate = DecimalString(max_digits=7, decimal_places=6)
    upgrades_to = serializers.SerializerMethodField()
    ltv = serializers.SerializerMethodField(
        help_text="The lifetime value of a tenant paying the plan price, upgrades included: "
        "what a tenant of the tier without its own predicted_ltv is throttled against."
    )

    class Meta:
        model = TierPlan
        fields = ["tier", "monthly_price", "currency", "lifetime_months", "upgrade_rate",
                  "upgrades_to", "ltv", "updated_at"]  # fmt: skip
        read_only_fields = fields

    def get_upgrades_to(self, plan: TierPlan) -> str | None:
        return plan.upgrades_to or None

    def get_ltv(self, plan: TierPlan) -> str | None:
        ltv = self.context.get("ltv", {}).get(plan.tier)
        return decimal_string(ltv) if ltv is not None else None


@extend_schema_field({"type": "string", "enum": [*Tenant.Tier.values, None], "nullable": True})
class OtherTierField(serializers.ChoiceField):
    """A tier named as another's target: the schema lists the tiers inline, not as a second
    name for the tier enum."""


class TierPlanUpdateSerializer(StrictSerializer):
    monthly_price = DecimalString(max_digits=20, decimal_places=6, min_value=Decimal(0))
    currency = serializers.RegexField(**CURRENCY)
    lifetime_months = serializers.IntegerField(min_value=0, max_value=1200)
    upgrade_rate = DecimalString(
        max_digits=7, decimal_places=6, min_value=Decimal(0), max_value=Decimal(1),
        help_text="The share (0 to 1) of the tier's tenants expected to upgrade.",
    )  # fmt: skip
    upgrades_to = OtherTierField(
        choices=Tenant.Tier.choices, allow_null=True, help_text="Another tier; null: none."
    )

    def validate_upgrades_to(self, value: str | None) -> str:
        if value and value == self.context.get("tier"):
            raise serializers.ValidationError("A tier upgrades to another tier.")
        return value or ""


class TierPlanCreateSerializer(TierPlanUpdateSerializer):
    tier = serializers.ChoiceField(choices=Tenant.Tier.choices)

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["currency"].default = "USD"
        fields["lifetime_months"].default = 24
        fields["upgrade_rate"].default = Decimal(0)
        fields["upgrades_to"].default = None
        for name in ("currency", "lifetime_months", "upgrade_rate", "upgrades_to"):
            fields[name].required = False
        return fields

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if data.get("upgrades_to") and data["upgrades_to"] == data["tier"]:
            raise serializers.ValidationError({"upgrades_to": ["A tier upgrades to another tier."]})
        return data


# --- API keys --------------------------------------------------------------------------


class ApiKeySerializer(serializers.ModelSerializer):
    """A key as listed: never its secret (only a digest is stored)."""

    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    scopes = serializers.ListField(child=serializers.CharField())
    active = serializers.BooleanField(source="is_active")

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "tenant", "scopes", "active", "created_at",
                  "revoked_at"]  # fmt: skip
        read_only_fields = fields


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(help_text="The whole key, shown this once.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields


class ApiKeyCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    tenant = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=Tenant.objects.all(),
        required=False,
        allow_null=True,
        default=None,
        help_text="Tenant slug; null or absent: an operator key (all tenants).",
    )
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=ApiKey.Scope.choices), min_length=1, max_length=3
    )

    def validate_scopes(self, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise serializers.ValidationError("Scopes must not repeat.")
        return value


class ApiKeyQuerySerializer(StrictQuery):
    tenant = serializers.CharField(
        required=False, max_length=63, help_text="A tenant's slug, or `operator` for operator keys."
    )
    active = serializers.ChoiceField(choices=["true", "false"], required=False)


# --- Prices ----------------------------------------------------------------------------

_PER_MILLION = dict(max_digits=30, decimal_places=18, min_value=Decimal(0))  # noqa: C408


class PriceRateSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    per_million = DecimalString(**_PER_MILLION)
    above_tokens = serializers.IntegerField(min_value=0, max_value=2**63 - 1, default=0)
    off_peak = serializers.BooleanField(default=False)

    class Meta:
        model = PriceRate
        fields = ["service_tier", "token_kind", "above_tokens", "off_peak", "per_million"]


class PriceSerializer(serializers.ModelSerializer):
    input_per_million = DecimalString(max_digits=30, decimal_places=18)
    output_per_million = DecimalString(max_digits=30, decimal_places=18)
    cached_input_per_million = DecimalString(max_digits=30, decimal_places=18, allow_null=True)
    cache_write_per_million = DecimalString(max_digits=30, decimal_places=18, allow_null=True)
    cache_write_1h_per_million = DecimalString(max_digits=30, decimal_places=18, allow_null=True)
    reasoning_per_million = DecimalString(max_digits=30, decimal_places=18, allow_null=True)
    per_query = DecimalString(max_digits=30, decimal_places=18, allow_null=True)
    batch_discount_percent = DecimalString(max_digits=6, decimal_places=3, allow_null=True)
    rates = PriceRateSerializer(many=True, read_only=True)

    class Meta:
        model = ModelPrice
        fields = ["id", "model", "provider", "mode", "currency", "effective_from",
                  "input_per_million", "output_per_million", "cached_input_per_million",
                  "cache_write_per_million", "cache_write_1h_per_million",
                  "reasoning_per_million", "per_query", "batch_discount_percent",
                  "off_peak_windows", "rates", "rules", "source", "created_at"]  # fmt: skip
        read_only_fields = fields


class PriceDetailSerializer(PriceSerializer):
    used = serializers.BooleanField(
        help_text="It has priced events: immutable (a price change is a new row)."
    )

    class Meta(PriceSerializer.Meta):
        fields = [*PriceSerializer.Meta.fields, "used"]
        read_only_fields = fields


def _optional_per_million() -> DecimalString:
    return DecimalString(**_PER_MILLION, required=False, allow_null=True)


class PriceCreateSerializer(StrictSerializer):
    model = serializers.CharField(max_length=200)
    provider = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    mode = serializers.ChoiceField(choices=ModelPrice.Mode.choices, default=ModelPrice.Mode.CHAT)
    currency = serializers.RegexField(**CURRENCY, default="USD")
    effective_from = AwareDateTimeField(
        required=False,
        help_text="When the price starts. May be left out only for a model's first price, "
        "which then applies to all of its history.",
    )
    input_per_million = DecimalString(**_PER_MILLION)
    output_per_million = DecimalString(**_PER_MILLION)
    cached_input_per_million = _optional_per_million()
    cache_write_per_million = _optional_per_million()
    cache_write_1h_per_million = _optional_per_million()
    reasoning_per_million = _optional_per_million()
    per_query = _optional_per_million()
    batch_discount_percent = DecimalString(
        max_digits=6, decimal_places=3, min_value=Decimal(0), max_value=Decimal(100),
        required=False, allow_null=True,
    )  # fmt: skip
    off_peak_windows = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        default=list,
        max_length=50,
        help_text='As LiteLLM writes them: [{"hours_utc": ["16:30-00:30"], "weekdays": [1, 2]}].',
    )
    source = serializers.CharField(max_length=200, required=False, allow_blank=True, default="api")
    rates = PriceRateSerializer(many=True, required=False, default=list)

    def validate_rates(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        seen = set()
        for rate in value:
            key = (rate["service_tier"], rate["token_kind"], rate["above_tokens"],
                   rate["off_peak"])  # fmt: skip
            if key in seen:
                raise serializers.ValidationError(
                    "Two rates for the same service tier, token kind, size and hours."
                )
            seen.add(key)
        return value


class PriceQuerySerializer(StrictQuery):
    provider = serializers.CharField(required=False, max_length=100)
    model = serializers.CharField(required=False, max_length=200)
    mode = serializers.ChoiceField(choices=ModelPrice.Mode.choices, required=False)
    at = AwareDateTimeField(
        required=False, help_text="Only the row of each model in force at this instant."
    )


class PriceHistoryQuerySerializer(StrictQuery):
    model = serializers.CharField(max_length=200)


class PriceImportQuerySerializer(StrictSerializer):
    effective_from = AwareDateTimeField(
        required=False, help_text="When changed prices start (default: now)."
    )
    show_skipped = serializers.BooleanField(
        required=False, default=False, help_text="List every skipped entry with its reason."
    )

    def validate_effective_from(self, value: datetime) -> datetime:
        return value or timezone.now()


class PriceImportResultSerializer(serializers.Serializer):
    entries = serializers.IntegerField()
    effective_from = serializers.DateTimeField()
    created = serializers.IntegerField(help_text="Models seen for the first time.")
    changed = serializers.IntegerField(help_text="Models whose price changed: a new row each.")
    unchanged = serializers.IntegerField()
    skipped = serializers.IntegerField()
    reasons = serializers.ListField(
        child=serializers.DictField(), help_text='[{"reason", "count"}], most frequent first.'
    )
    skipped_entries = serializers.DictField(
        child=serializers.CharField(),
        required=False,
        help_text="With show_skipped: name -> reason.",
    )
