from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q

from .fields import ExactDecimalField, at_least, at_most

SLUG_VALIDATOR = RegexValidator(
    r"^[a-z0-9][a-z0-9_-]{0,62}$",
    "A slug is 1-63 lower-case letters, digits, '-' or '_', starting with a letter or digit.",
)

# The first price imported for a model applies to all of its history.
BEGINNING_OF_TIME = datetime(1970, 1, 1, tzinfo=UTC)


class Tenant(models.Model):
    class Tier(models.TextChoices):
        FREE = "free", "Free"
        PRO = "pro", "Pro"
        ENTERPRISE = "enterprise", "Enterprise"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"
        CLOSED = "closed", "Closed"

    slug = models.CharField(max_length=63, unique=True, validators=[SLUG_VALIDATOR])
    name = models.CharField(max_length=200)
    tier = models.CharField(max_length=16, choices=Tier.choices, default=Tier.FREE)
    billing_currency = models.CharField(max_length=3, default="USD")
    signup_at = models.DateTimeField()
    monthly_cap = ExactDecimalField(
        max_digits=20,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0))],
        help_text="Contractual monthly spend cap (hard). Empty: no cap.",
    )
    predicted_ltv = ExactDecimalField(
        max_digits=20,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0))],
        help_text="Predicted lifetime value, for free-tier throttling.",
    )
    monthly_revenue = ExactDecimalField(
        max_digits=20,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0))],
        help_text="What the tenant pays per month, in its billing currency. Empty: its "
        "tier's plan price.",
    )
    markup_percent = ExactDecimalField(
        max_digits=7,
        decimal_places=3,
        default=Decimal(0),
        help_text="Chargeback markup added on statements, in percent.",
    )
    cap_override_until = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Staff override: the monthly cap is not enforced until this instant.",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    auto_created = models.BooleanField(
        default=False, help_text="Created on first sight of its slug in a usage event."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(
                condition=Q(monthly_cap__isnull=True) | Q(at_least("monthly_cap", 0)),
                name="tenant_monthly_cap_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(predicted_ltv__isnull=True) | Q(at_least("predicted_ltv", 0)),
                name="tenant_predicted_ltv_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(monthly_revenue__isnull=True) | Q(at_least("monthly_revenue", 0)),
                name="tenant_monthly_revenue_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return self.slug


class TierPlan(models.Model):
    """The price of a tier's plan: the revenue side of unit economics (margin per tenant
    and tier) and what a tenant's lifetime value is predicted from when staff set none.

    A tenant's predicted lifetime value is its monthly revenue times the tier's
    `lifetime_months`, plus `upgrade_rate` times the lifetime value of the tier it
    upgrades to (how a free tier earns anything).
    """

    tier = models.CharField(max_length=16, choices=Tenant.Tier.choices, unique=True)
    monthly_price = ExactDecimalField(
        max_digits=20, decimal_places=6, validators=[MinValueValidator(Decimal(0))]
    )
    currency = models.CharField(max_length=3, default="USD")
    lifetime_months = models.PositiveSmallIntegerField(
        default=24, help_text="How many months a tenant of this tier is expected to stay."
    )
    upgrade_rate = ExactDecimalField(
        max_digits=7,
        decimal_places=6,
        default=Decimal(0),
        validators=[MinValueValidator(Decimal(0))],
        help_text="The share (0 to 1) of this tier's tenants expected to upgrade.",
    )
    upgrades_to = models.CharField(
        max_length=16,
        choices=Tenant.Tier.choices,
        blank=True,
        help_text="The tier they upgrade to.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["monthly_price", "tier"]
        constraints = [
            models.CheckConstraint(
                condition=Q(at_least("monthly_price", 0))
                & Q(at_least("upgrade_rate", 0))
                & Q(at_most("upgrade_rate", 1)),
                name="tier_plan_amounts_in_range",
            ),
            models.CheckConstraint(
                condition=~Q(upgrades_to=F("tier")), name="tier_plan_upgrades_elsewhere"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_tier_display()}: {self.monthly_price} {self.currency}/month"


class ApiKey(models.Model):
    """A bearer key. Only a SHA-256 digest of the key is stored; the key is shown once.

    The key is `fo_<prefix>_<secret>`; the prefix finds the row, the digest proves it.
    An operator key has no tenant and may act for any tenant.
    """

    class Scope(models.TextChoices):
        INGEST = "ingest", "Ingest"
        READ = "read", "Read"
        MANAGE = "manage", "Manage (budgets, rate limits; for operator keys also policies)"

    name = models.CharField(max_length=200, blank=True)
    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="api_keys"
    )
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        owner = self.tenant.slug if self.tenant_id else "operator"
        return f"{self.name or self.prefix} ({owner})"

    # DRF treats the authenticated principal as a user; a valid key is authenticated.
    is_authenticated = True

    @property
    def is_operator(self) -> bool:
        return self.tenant_id is None

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


def _per_million(*, optional: bool = False) -> ExactDecimalField:
    # 18 places: LiteLLM's finest per-token price (5.0000000000000004E-8) times 1M.
    return ExactDecimalField(max_digits=30, decimal_places=18, null=optional, blank=optional)


class ModelPrice(models.Model):
    """The list prices of one model from `effective_from` on, per 1M tokens of each kind.

    The columns are the standard tier's base rates (prompts of any size, any hour); the
    rates of other service tiers, of long prompts and of off-peak hours are `PriceRate`
    rows of this price. Never edited once it has priced an event: a price change is a
    new row. How a rate the row does not state is found (the vendors' rules) is
    `finops.pricing.rules`; docs/pricing.md has the whole resolution.
    """

    class Mode(models.TextChoices):
        CHAT = "chat", "Chat / completion (per token)"
        EMBEDDING = "embedding", "Embedding (per input token)"
        RERANK = "rerank", "Rerank / search (per query)"

    model = models.CharField(max_length=200)
    provider = models.CharField(max_length=100, blank=True)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.CHAT)
    currency = models.CharField(max_length=3, default="USD")
    effective_from = models.DateTimeField(default=BEGINNING_OF_TIME)
    input_per_million = _per_million()
    output_per_million = _per_million()
    cached_input_per_million = _per_million(optional=True)
    cache_write_per_million = _per_million(optional=True)
    cache_write_1h_per_million = _per_million(optional=True)
    reasoning_per_million = _per_million(optional=True)
    per_query = ExactDecimalField(
        max_digits=30,
        decimal_places=18,
        null=True,
        blank=True,
        help_text="Price of one rerank or search query (unit), not per million.",
    )
    batch_discount_percent = ExactDecimalField(
        max_digits=6,
        decimal_places=3,
        null=True,
        blank=True,
        help_text="Batch rates this row states no batch price for: this percent off the "
        "standard rate (before the vendor's rule).",
    )
    off_peak_windows = models.JSONField(
        default=list,
        blank=True,
        help_text='Off-peak windows, as LiteLLM writes them: [{"hours_utc": ["16:30-00:30"], '
        '"weekdays": [1, 2, 3, 4, 5]}] (UTC hours, ISO weekdays; no weekdays: every day).',
    )
    rules = models.JSONField(
        null=True,
        blank=True,
        help_text="The vendor's rules in force when the row was created, frozen with it, so "
        "that a row that priced events never changes its rates.",
    )
    source = models.CharField(max_length=200, blank=True, help_text="Where the price came from.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "effective_from"], name="model_price_unique_per_instant"
            ),
            models.CheckConstraint(
                condition=Q(at_least("input_per_million", 0))
                & Q(at_least("output_per_million", 0)),
                name="model_price_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(batch_discount_percent__isnull=True)
                | (
                    Q(at_least("batch_discount_percent", 0))
                    & Q(at_most("batch_discount_percent", 100))
                ),
                name="model_price_batch_discount_is_percent",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model} from {self.effective_from:%Y-%m-%d %H:%M}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # A new row freezes the vendor's rules of the day for its provider and model.
        if self.rules is None:
            from .pricing.rules import frozen_rules

            self.rules = frozen_rules(self.provider, self.model)
        super().save(*args, **kwargs)

    def clean(self) -> None:
        from .pricing.cost import parse_off_peak_windows

        try:
            parse_off_peak_windows(self.off_peak_windows)
        except ValueError as exc:
            raise ValidationError({"off_peak_windows": str(exc)}) from None


class ServiceTier(models.TextChoices):
    STANDARD = "standard", "Standard"
    BATCH = "batch", "Batch"
    FLEX = "flex", "Flex"
    PRIORITY = "priority", "Priority"


class TokenKind(models.TextChoices):
    """The parts of a call that carry their own price (the one vocabulary of kinds)."""

    INPUT = "input", "input"
    CACHED_INPUT = "cached_input", "cached input"
    CACHE_WRITE = "cache_write", "cache write, 5 min"
    CACHE_WRITE_1H = "cache_write_1h", "cache write, 1 h"
    OUTPUT = "output", "output"
    REASONING = "reasoning", "reasoning"


class PriceRate(models.Model):
    """One rate of a price row beyond its base columns: a service tier's rate, the rate
    for prompts above `above_tokens` tokens, or an off-peak rate. Per 1M tokens."""

    price = models.ForeignKey(ModelPrice, on_delete=models.CASCADE, related_name="rates")
    service_tier = models.CharField(max_length=16, choices=ServiceTier.choices)
    token_kind = models.CharField(max_length=16, choices=TokenKind.choices)
    above_tokens = models.BigIntegerField(
        default=0, help_text="Applies to prompts of more than this many tokens (0: any)."
    )
    off_peak = models.BooleanField(default=False, help_text="Applies inside off-peak windows.")
    per_million = _per_million()

    class Meta:
        ordering = ["price", "service_tier", "above_tokens", "off_peak", "token_kind"]
        constraints = [
            models.UniqueConstraint(
                fields=["price", "service_tier", "token_kind", "above_tokens", "off_peak"],
                name="price_rate_unique",
            ),
            models.CheckConstraint(
                condition=Q(at_least("per_million", 0)) & Q(above_tokens__gte=0),
                name="price_rate_not_negative",
            ),
        ]

    def __str__(self) -> str:
        band = f" above {self.above_tokens}" if self.above_tokens else ""
        hours = " off-peak" if self.off_peak else ""
        return f"{self.service_tier} {self.token_kind}{band}{hours}: {self.per_million}"
