from __future__ import annotations

from datetime import date
from decimal import Decimal

import factory
from django.utils import timezone

from console.models import RetirementReview
from finops.models import BEGINNING_OF_TIME, ModelPrice, Tenant
from ingestion.models import Feature
from statements.models import VendorBill


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"tenant-{n}")
    name = factory.LazyAttribute(lambda t: t.slug.title())
    tier = Tenant.Tier.PRO
    signup_at = factory.LazyFunction(timezone.now)


class ModelPriceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelPrice

    model = factory.Sequence(lambda n: f"test-model-{n}")
    provider = "test"
    effective_from = BEGINNING_OF_TIME
    input_per_million = Decimal("3")
    output_per_million = Decimal("15")


class FeatureFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Feature
        django_get_or_create = ("key",)

    key = factory.Sequence(lambda n: f"feature_{n}")


class VendorBillFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = VendorBill

    provider = "openai"
    period = date(2025, 1, 1)
    amount = Decimal("1000.00")


class RetirementReviewFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RetirementReview

    kind = RetirementReview.Kind.FEATURE
    subject = factory.Sequence(lambda n: f"feature_{n}")
    opened_at = factory.LazyFunction(timezone.now)
    calls = 1
    cost = Decimal("0.0105")
