from __future__ import annotations

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from finops.models import Tenant
from finops.money import decimal_string
from finops.serializers import StrictFieldsMixin, StrictSerializer
from ingestion.models import Feature, PromptTemplate

from .models import Alert, Budget


class BudgetSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(
        slug_field="slug", queryset=Tenant.objects.all(), required=False, allow_null=True
    )
    feature = serializers.SlugRelatedField(
        slug_field="key", queryset=Feature.objects.all(), required=False, allow_null=True
    )
    prompt_template = serializers.SlugRelatedField(
        slug_field="key", queryset=PromptTemplate.objects.all(), required=False, allow_null=True
    )
    model = serializers.CharField(max_length=200, required=False, allow_blank=True)
    amount = serializers.DecimalField(
        max_digits=20, decimal_places=6, min_value=Decimal("0.000001")
    )
    thresholds = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=1000),
        min_length=1,
        max_length=10,
        required=False,
    )

    class Meta:
        model = Budget
        fields = ["id", "name", "tenant", "feature", "model", "prompt_template", "period",
                  "amount", "thresholds", "action"]  # fmt: skip
        read_only_fields = ["id"]

    def validate_thresholds(self, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise serializers.ValidationError("Thresholds must not repeat.")
        return sorted(value)

    def to_representation(self, instance: Budget) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["amount"] = decimal_string(instance.amount)
        return data


class AlertQuerySerializer(StrictSerializer):
    tenant = serializers.CharField(required=False, max_length=63)
    kind = serializers.ChoiceField(choices=Alert.Kind.choices, required=False)
    since = serializers.DateTimeField(required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000)
    cursor = serializers.CharField(required=False)


class FeatureSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    kill_switch_active = serializers.SerializerMethodField()

    class Meta:
        model = Feature
        fields = ["key", "name", "status", "task_type", "default_model", "fallback_model",
                  "kill_switch_enabled", "kill_switch_active"]  # fmt: skip
        read_only_fields = ["key", "kill_switch_active"]

    def get_kill_switch_active(self, feature: Feature) -> bool:
        return feature.kill_switch_active_since is not None
