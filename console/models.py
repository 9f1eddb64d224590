from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models

from billing.models import Delivery
from finops.fields import ExactDecimalField


class RetirementReview(models.Model):
    """A little-used feature, prompt template or model, put before staff to keep, retire
    or consolidate."""

    class Kind(models.TextChoices):
        FEATURE = "feature", "Feature"
        PROMPT_TEMPLATE = "prompt_template", "Prompt template"
        MODEL = "model", "Model"

    class Decision(models.TextChoices):
        OPEN = "open", "Open: to decide"
        KEEP = "keep", "Keep"
        RETIRE = "retire", "Retire"
        CONSOLIDATE = "consolidate", "Consolidate into another feature"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    subject = models.CharField(max_length=200, help_text="The feature key, prompt key or model.")
    opened_at = models.DateTimeField()
    window_days = models.PositiveSmallIntegerField(default=90)
    calls = models.BigIntegerField()
    cost = ExactDecimalField(max_digits=48, decimal_places=30)
    calls_last_30_days = models.BigIntegerField(default=0)
    calls_previous_30_days = models.BigIntegerField(default=0)
    last_seen = models.DateTimeField(null=True, blank=True)
    tenants = models.JSONField(default=list, help_text="Slugs of the tenants using it.")

    decision = models.CharField(max_length=16, choices=Decision.choices, default=Decision.OPEN)
    consolidate_into = models.ForeignKey(
        "ingestion.Feature", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    deprecate_on = models.DateField(null=True, blank=True)
    throttle_on = models.DateField(null=True, blank=True)
    sunset_on = models.DateField(null=True, blank=True)
    note = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["decision", "-opened_at"]
        indexes = [models.Index(fields=["kind", "subject"], name="review_subject")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.subject}"

    @property
    def trend(self) -> str:
        before, after = self.calls_previous_30_days, self.calls_last_30_days
        if before == 0:
            return "new" if after else "idle"
        return f"{(after - before) * 100 / before:+.0f}%"


class PlannedFeature(models.Model):
    """A feature staff plan to launch on the pipeline of an existing one: the projection
    adds `multiplier` times the reused feature's daily cost from `launch_date` on."""

    name = models.CharField(max_length=200)
    reuses = models.ForeignKey(
        "ingestion.Feature", on_delete=models.PROTECT, related_name="+",
        help_text="The existing feature whose pipeline (and cost profile) it reuses.",
    )  # fmt: skip
    launch_date = models.DateField()
    multiplier = ExactDecimalField(
        max_digits=8, decimal_places=2, default=Decimal("2.5"),
        help_text="Its daily cost as a multiple of the reused feature's (the step).",
    )  # fmt: skip
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["launch_date", "name"]

    def __str__(self) -> str:
        return f"{self.name} (reuses {self.reuses}, from {self.launch_date})"


class Digest(models.Model):
    """The weekly review of one week (Monday to Monday, UTC), written once."""

    week_start = models.DateField(unique=True)
    created_at = models.DateTimeField()
    text = models.TextField()
    figures = models.JSONField(default=dict)

    class Meta:
        ordering = ["-week_start"]
        verbose_name = "weekly digest"

    def __str__(self) -> str:
        return f"Weekly digest of {self.week_start:%Y-%m-%d}"


class DigestDelivery(Delivery):
    """One channel's copy of a digest, sent once."""

    digest = models.ForeignKey(Digest, on_delete=models.CASCADE, related_name="deliveries")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["digest", "channel"], name="digest_delivery_once")
        ]

    def __str__(self) -> str:
        return f"{self.digest} by {self.channel}: {self.status}"
