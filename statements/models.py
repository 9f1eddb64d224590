from __future__ import annotations

from django.db import models

from finops.fields import ExactDecimalField
from finops.models import ModelPrice, Tenant

# Rounded money: up to 3 minor-unit places (BHD, KWD, ...); exact sums keep 30.
Money = dict(max_digits=24, decimal_places=6)  # noqa: C408 - field keyword arguments
Exact = dict(max_digits=48, decimal_places=30)  # noqa: C408


class Statement(models.Model):
    """One tenant's chargeback statement for one calendar month (UTC).

    A draft is rebuilt from the ledger until it is finalized; from then on nothing in it
    changes, which `content_hash` (SHA-256 of its canonical JSON) lets anyone check.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        FINALIZED = "finalized", "Finalized"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="statements")
    period = models.DateField(help_text="The first day of the month billed.")
    number = models.CharField(max_length=100, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    currency = models.CharField(max_length=3)
    markup_percent = ExactDecimalField(max_digits=7, decimal_places=3, default=0)
    subtotal = ExactDecimalField(**Money, default=0, help_text="Sum of the rounded usage lines.")
    markup = ExactDecimalField(**Money, default=0)
    adjustments = ExactDecimalField(**Money, default=0)
    total = ExactDecimalField(**Money, default=0, help_text="Sum of every rounded line.")
    total_exact = ExactDecimalField(
        **Exact, default=0, help_text="The same lines before rounding, kept beside the total."
    )
    content_hash = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    drafted_at = models.DateTimeField(null=True, blank=True)
    finalized_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-period", "tenant_id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "period"], name="statement_once_a_month")
        ]
        indexes = [models.Index(fields=["status", "period"], name="statement_status_period")]

    def __str__(self) -> str:
        return self.number

    @property
    def period_label(self) -> str:
        return f"{self.period:%Y-%m}"


class StatementLine(models.Model):
    class Kind(models.TextChoices):
        USAGE = "usage", "Usage"
        MARKUP = "markup", "Markup"
        ADJUSTMENT = "adjustment", "Adjustment"

    statement = models.ForeignKey(Statement, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    period = models.DateField(help_text="The month the usage belongs to.")
    feature = models.CharField(max_length=128, blank=True)
    model = models.CharField(max_length=200, blank=True)
    token_kind = models.CharField(max_length=32, blank=True)
    batch = models.BooleanField(default=False, help_text="service_tier is batch.")
    service_tier = models.CharField(max_length=16, default="standard")
    above_tokens = models.BigIntegerField(
        default=0, help_text="The long-context threshold of the line's rate (0: base)."
    )
    off_peak = models.BooleanField(default=False)
    price = models.ForeignKey(
        ModelPrice, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    quantity = models.BigIntegerField(null=True, blank=True)
    unit_price = ExactDecimalField(
        # A rate (18 places per 1M) times a tier's multiple or a discount: kept exact, as
        # the content hash reads it.
        max_digits=48,
        decimal_places=30,
        null=True,
        blank=True,
        help_text="Per 1M tokens (per 1M queries for a query line).",
    )
    amount = ExactDecimalField(**Money, help_text="Rounded once, half-up, to the minor unit.")
    amount_exact = ExactDecimalField(**Exact)
    description = models.CharField(max_length=300)

    class Meta:
        ordering = ["statement", "position"]
        constraints = [
            models.UniqueConstraint(fields=["statement", "position"], name="statement_line_once")
        ]

    def __str__(self) -> str:
        return self.description


class VendorBill(models.Model):
    """What a model provider invoiced for a month, entered by staff to reconcile."""

    provider = models.CharField(
        max_length=100, help_text="As in the price table: openai, anthropic, bedrock, ..."
    )
    period = models.DateField(help_text="The first day of the month billed.")
    amount = ExactDecimalField(max_digits=20, decimal_places=6)
    currency = models.CharField(max_length=3, default="USD")
    reference = models.CharField(max_length=200, blank=True, help_text="The invoice number.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-period", "provider"]

    def __str__(self) -> str:
        return f"{self.provider} {self.period:%Y-%m}: {self.amount} {self.currency}"
