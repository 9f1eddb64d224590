"""Shapes of the management API for features."""

from __future__ import annotations

from rest_framework import serializers

from finops.serializers import StrictQuery

from .models import Feature


class FeatureListSerializer(serializers.ModelSerializer):
    """A feature's policy; its tripped kill switches (billing's, per tenant) are listed at
    `/api/v1/features/{key}`."""

    class Meta:
        model = Feature
        fields = ["key", "name", "status", "task_type", "default_model", "fallback_model",
                  "kill_switch_enabled", "auto_created", "created_at"]  # fmt: skip
        read_only_fields = fields


class FeatureQuerySerializer(StrictQuery):
    status = serializers.ChoiceField(choices=Feature.Status.choices, required=False)
    task_type = serializers.ChoiceField(choices=Feature.TaskType.choices, required=False)
