"""Shapes of the management API: retirement reviews, optimization decisions and
provisioned offers."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from rest_framework import serializers

from finops.operator_serializers import CURRENCY, DecimalString
from finops.serializers import StrictQuery, StrictSerializer
from ingestion.models import Feature

from .models import Lever, OptimizationDecision, ProvisionedOffer, RetirementReview


class RetirementReviewSerializer(serializers.ModelSerializer):
    cost = DecimalString(max_digits=48, decimal_places=30)
    consolidate_into = serializers.SlugRelatedField(slug_field="key", read_only=True)
    decided_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = RetirementReview
        fields = ["id", "kind", "subject", "opened_at", "window_days", "calls", "cost",
                  "calls_last_30_days", "calls_previous_30_days", "trend", "last_seen",
                  "tenants", "decision", "consolidate_into", "deprecate_on", "throttle_on",
                  "sunset_on", "note", "decided_by", "decided_at"]  # fmt: skip
        read_only_fields = fields


DECISIONS = [(value, label) for value, label in RetirementReview.Decision.choices
             if value != RetirementReview.Decision.OPEN]  # fmt: skip


class ReviewDecisionSerializer(StrictSerializer):
    decision = serializers.ChoiceField(choices=DECISIONS)
    consolidate_into = serializers.SlugRelatedField(
        slug_field="key", queryset=Feature.objects.all(), required=False, allow_null=True,
        default=None, help_text="The feature's key (decision consolidate).",
    )  # fmt: skip
    deprecate_on = serializers.DateField(required=False, allow_null=True, default=None)
    throttle_on = serializers.DateField(required=False, allow_null=True, default=None)
    sunset_on = serializers.DateField(required=False, allow_null=True, default=None)
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=10000)


class ReviewQuerySerializer(StrictQuery):
    decision = serializers.ChoiceField(
        choices=RetirementReview.Decision.choices, required=False, default="open"
    )
    kind = serializers.ChoiceField(choices=RetirementReview.Kind.choices, required=False)


# --- Optimization decisions ------------------------------------------------------------

_SAVING = dict(max_digits=20, decimal_places=6, min_value=Decimal(0))  # noqa: C408


class OptimizationDecisionSerializer(serializers.ModelSerializer):
    """A decision as stored; the API adds its measured `result`
    (`console.decisions.DecisionResult.as_json`)."""

    feature = serializers.SlugRelatedField(slug_field="key", read_only=True)
    expected_monthly_saving = DecimalString(max_digits=20, decimal_places=6)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = OptimizationDecision
        fields = ["id", "lever", "feature", "decided_on", "expected_monthly_saving", "currency",
                  "note", "created_by", "created_at"]  # fmt: skip
        read_only_fields = fields


class OptimizationDecisionWriteSerializer(StrictSerializer):
    lever = serializers.ChoiceField(choices=Lever.choices)
    feature = serializers.SlugRelatedField(
        slug_field="key", queryset=Feature.objects.all(), help_text="The feature's key."
    )
    decided_on = serializers.DateField(
        input_formats=["iso-8601"], help_text="The UTC day the change took effect; not later "
        "than today.",
    )  # fmt: skip
    expected_monthly_saving = DecimalString(**_SAVING)
    currency = serializers.RegexField(**CURRENCY, default="USD")
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=10000)

    def validate_decided_on(self, value: date) -> date:
        if value > datetime.now(UTC).date():
            raise serializers.ValidationError("Must not be in the future (UTC).")
        return value


class DecisionQuerySerializer(StrictQuery):
    lever = serializers.ChoiceField(choices=Lever.choices, required=False)
    feature = serializers.CharField(required=False, max_length=128, help_text="A feature key.")


# --- Provisioned offers ----------------------------------------------------------------


class ProvisionedOfferSerializer(serializers.ModelSerializer):
    monthly_price = DecimalString(max_digits=20, decimal_places=6)

    class Meta:
        model = ProvisionedOffer
        fields = ["id", "model", "monthly_price", "currency", "tokens_per_minute", "note",
                  "updated_at"]  # fmt: skip
        read_only_fields = fields


class ProvisionedOfferWriteSerializer(StrictSerializer):
    model = serializers.CharField(max_length=200, help_text="As events name it.")
    monthly_price = DecimalString(**_SAVING)
    currency = serializers.RegexField(**CURRENCY, default="USD")
    tokens_per_minute = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)


class OfferQuerySerializer(StrictQuery):
    model = serializers.CharField(required=False, max_length=200)
