from __future__ import annotations

from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from finops.models import ApiKey, Tenant
from finops.money import decimal_string
from finops.serializers import StrictFieldsMixin, StrictQuery, StrictSerializer
from ingestion.models import Feature, PromptTemplate, regions_problem

from .killswitches import kill_switch_list
from .models import Alert, Budget, KillSwitch, RateLimit
from .selectors import features_used_by, prompt_templates_used_by


class ApiKeyPrefixField(serializers.SlugRelatedField):
    """An API key named by its public prefix. A key outside the field's queryset (another
    tenant's, for a tenant key) is answered as an unknown one: its existence is not told."""

    default_error_messages = {
        "does_not_exist": "No such API key.",
        "invalid": "No such API key.",
        "revoked": "This API key has been revoked.",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(slug_field="prefix", **kwargs)

    def to_internal_value(self, data: Any) -> ApiKey:
        if not isinstance(data, str) or not data or len(data) > 16 or "\x00" in data:
            self.fail("does_not_exist")
        key = super().to_internal_value(data)
        if key.revoked_at is not None:
            self.fail("revoked")
        return key


class LimitScopeSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    """What a budget or a rate limit covers. With `key_tenant` in the context (a tenant
    key's request) only that tenant, the features and prompt templates of its own usage
    and its own API keys can be named; anything else reads as unknown."""

    tenant = serializers.SlugRelatedField(
        slug_field="slug", queryset=Tenant.objects.all(), required=False, allow_null=True,
        error_messages={"does_not_exist": "No such tenant."},
    )  # fmt: skip
    feature = serializers.SlugRelatedField(
        slug_field="key", queryset=Feature.objects.all(), required=False, allow_null=True,
        error_messages={"does_not_exist": "No such feature."},
    )  # fmt: skip
    prompt_template = serializers.SlugRelatedField(
        slug_field="key", queryset=PromptTemplate.objects.all(), required=False, allow_null=True,
        error_messages={"does_not_exist": "No such prompt template."},
    )  # fmt: skip
    model = serializers.CharField(max_length=200, required=False, allow_blank=True)
    # Matched exactly against the events' `user`: kept as sent, spaces included.
    user = serializers.CharField(
        max_length=200, required=False, allow_blank=True, trim_whitespace=False,
        help_text="An end user, or * for each end user on their own.",
    )  # fmt: skip
    api_key = ApiKeyPrefixField(
        queryset=ApiKey.objects.select_related("tenant"), required=False, allow_null=True,
        help_text="An API key, by its prefix.",
    )  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        key_tenant = self.context.get("key_tenant")
        if key_tenant is not None:
            fields = self.fields
            fields["tenant"].queryset = Tenant.objects.filter(pk=key_tenant.pk)
            fields["tenant"].allow_null = False
            fields["tenant"].error_messages["does_not_exist"] = (
                "A tenant key names its own tenant only."
            )
            fields["feature"].queryset = features_used_by(tenant=key_tenant)
            fields["prompt_template"].queryset = prompt_templates_used_by(tenant=key_tenant)
            fields["api_key"].queryset = ApiKey.objects.filter(tenant=key_tenant)

    def merged(self, attrs: dict[str, Any], name: str, default: Any = None) -> Any:
        """A field's value after this write: the one sent, else the stored one."""
        if name in attrs:
            return attrs[name]
        return getattr(self.instance, name, default) if self.instance is not None else default

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        key_tenant = self.context.get("key_tenant")
        if key_tenant is not None:
            attrs["tenant"] = key_tenant
        tenant = self.merged(attrs, "tenant")
        api_key = self.merged(attrs, "api_key")
        # An operator key may post for any tenant, so it may be paired with any.
        if api_key is not None and api_key.tenant_id and tenant is not None:
            if api_key.tenant_id != tenant.id:
                raise serializers.ValidationError(
                    {"api_key": ["This API key belongs to another tenant than the limit's."]}
                )
        return attrs


class BudgetSerializer(LimitScopeSerializer):
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
        fields = ["id", "name", "tenant", "feature", "model", "prompt_template", "user",
                  "api_key", "period", "amount", "thresholds", "action"]  # fmt: skip
        read_only_fields = ["id"]

    def validate_thresholds(self, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise serializers.ValidationError("Thresholds must not repeat.")
        return sorted(value)

    def to_representation(self, instance: Budget) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["amount"] = decimal_string(instance.amount)
        return data


class RateLimitSerializer(LimitScopeSerializer):
    requests = serializers.IntegerField(
        min_value=1, max_value=2**31 - 1, required=False, allow_null=True,
        help_text="Calls per window (counted as the guard allows them).",
    )  # fmt: skip
    tokens = serializers.IntegerField(
        min_value=1, max_value=2**63 - 1, required=False, allow_null=True,
        help_text="Input plus output tokens per window.",
    )  # fmt: skip
    cost = serializers.DecimalField(
        max_digits=20, decimal_places=6, min_value=Decimal("0.000001"), required=False,
        allow_null=True, help_text="Cost per window, a decimal string.",
    )  # fmt: skip

    class Meta:
        model = RateLimit
        fields = ["id", "name", "tenant", "feature", "model", "prompt_template", "user",
                  "api_key", "window", "requests", "tokens", "cost"]  # fmt: skip
        read_only_fields = ["id"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        limits = ("requests", "tokens", "cost")
        if all(self.merged(attrs, name) is None for name in limits):
            message = "Set at least one of requests, tokens and cost."
            raise serializers.ValidationError({name: [message] for name in limits})
        return attrs

    def to_representation(self, instance: RateLimit) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["cost"] = decimal_string(instance.cost) if instance.cost is not None else None
        return data


class LimitQuerySerializer(StrictQuery):
    """The query of the budgets and rate limits lists."""

    tenant = serializers.CharField(required=False, max_length=63)


class AlertQuerySerializer(StrictSerializer):
    tenant = serializers.CharField(required=False, max_length=63)
    kind = serializers.ChoiceField(choices=Alert.Kind.choices, required=False)
    severity = serializers.ChoiceField(choices=Alert.Severity.choices, required=False)
    since = serializers.DateTimeField(required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=1000)
    cursor = serializers.CharField(required=False)


class KillSwitchSerializer(serializers.ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = KillSwitch
        fields = ["tenant", "tripped_at", "automatic", "reason"]
        read_only_fields = fields


class FeatureSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    kill_switches = serializers.SerializerMethodField()
    kill_switch_all = serializers.BooleanField(
        write_only=True,
        required=False,
        help_text="true trips the feature's kill switch for every tenant; false clears it.",
    )

    class Meta:
        model = Feature
        fields = ["key", "name", "status", "task_type", "default_model", "fallback_model",
                  "kill_switch_enabled", "workload", "allowed_regions", "kill_switches",
                  "kill_switch_all"]  # fmt: skip
        read_only_fields = ["key", "kill_switches"]

    def validate_allowed_regions(self, value: Any) -> list[str]:
        problem = regions_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return list(dict.fromkeys(value))

    @extend_schema_field(KillSwitchSerializer(many=True))
    def get_kill_switches(self, feature: Feature) -> list[dict[str, Any]]:
        """The active switches: a tenant's own (`tenant` its slug) or every tenant's (null)."""
        return KillSwitchSerializer(kill_switch_list(feature=feature), many=True).data
