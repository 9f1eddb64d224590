from __future__ import annotations

from django.conf import settings
from django.db import models

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
