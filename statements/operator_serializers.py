"""Shapes of the management API for vendor bills."""

from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from finops.operator_serializers import (
    CURRENCY,
    DecimalString,
    MonthField,
)
from finops.serializers import StrictQuery, StrictSerializer

from .models import VendorBill


class VendorBillSerializer(serializers.ModelSerializer):
    period = MonthField(help_text="The month billed, YYYY-MM.")
    amount = DecimalString(max_digits=20, decimal_places=6)

    class Meta:
        model = VendorBill
        fields = ["id", "provider", "period", "amount", "currency", "reference", "created_at"]
        read_only_fields = fields


class VendorBillCreateSerializer(StrictSerializer):
    provider = serializers.CharField(
        max_length=100, help_text="As in the price table: openai, anthropic, bedrock, ..."
    )
    period = MonthField(help_text="The month billed, YYYY-MM.")
    amount = DecimalString(max_digits=20, decimal_places=6, min_value=Decimal(0))
    currency = serializers.RegexField(**CURRENCY, default="USD")
    reference = serializers.CharField(
        max_length=200, required=False, allow_blank=True, default="", help_text="Invoice number."
    )


class VendorBillQuerySerializer(StrictQuery):
    provider = serializers.CharField(required=False, max_length=100)
    period = MonthField(required=False)
