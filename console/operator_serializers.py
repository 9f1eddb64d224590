"""Shapes of the management API for retirement reviews."""

from __future__ import annotations

from rest_framework import serializers

from finops.operator_serializers import DecimalString
from finops.serializers import StrictQuery, StrictSerializer
from ingestion.models import Feature

from .models import RetirementReview


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
