from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
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


class Lever(models.TextChoices):
    """The optimization levers finops measures (`console.savings`)."""

    ROUTING = "routing", "Model routing"
    PROVIDER_CACHE = "provider_cache", "Provider prompt caching"
    APP_CACHE = "app_cache", "Application / semantic cache"
    BATCH = "batch", "Batch API"
    OFF_PEAK = "off_peak", "Off-peak shifting"
    PROVISIONED = "provisioned", "Provisioned throughput"
    REGION = "region", "Region"
    PROMPT = "prompt", "Prompt trimming"
    RETIREMENT = "retirement", "Feature retirement"
    OTHER = "other", "Other"


class OptimizationDecision(models.Model):
    """One optimization decision staff took (one per sprint, in the playbook), with the
    saving they expected; finops measures what it realized after `decided_on`."""

    lever = models.CharField(max_length=16, choices=Lever.choices)
    feature = models.ForeignKey(
        "ingestion.Feature", on_delete=models.PROTECT, related_name="+",
        help_text="The feature it changed: its cost per call before and after is compared.",
    )  # fmt: skip
    decided_on = models.DateField(help_text="The day the change took effect (UTC).")
    expected_monthly_saving = ExactDecimalField(
        max_digits=20, decimal_places=6, validators=[MinValueValidator(Decimal(0))],
    )  # fmt: skip
    currency = models.CharField(max_length=3, default="USD")
    note = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-decided_on", "-id"]
        verbose_name = "optimization decision"

    def __str__(self) -> str:
        return f"{self.get_lever_display()} on {self.feature} from {self.decided_on}"


class ProvisionedOffer(models.Model):
    """A provisioned-throughput price staff obtained for a model (PTUs, provisioned
    throughput units): a fixed monthly price for a capacity in tokens per minute."""

    model = models.CharField(max_length=200, help_text="As events name it.")
    monthly_price = ExactDecimalField(
        max_digits=20, decimal_places=6, validators=[MinValueValidator(Decimal(0))],
    )  # fmt: skip
    currency = models.CharField(max_length=3, default="USD")
    tokens_per_minute = models.PositiveBigIntegerField(
        validators=[MinValueValidator(1)],
        help_text="The capacity bought (input and output tokens per minute).",
    )
    note = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model"]
        constraints = [
            models.UniqueConstraint(fields=["model"], name="provisioned_offer_one_per_model")
        ]

    def __str__(self) -> str:
        return f"{self.model}: {self.monthly_price} {self.currency}/month"


class ProjectionSnapshot(models.Model):
    """A projection kept as it was made: on each month's first day the job projects that
    month and the five after it; once a month is over, its actual is set beside it."""

    month = models.DateField(help_text="The first day of the projected month.")
    made_on = models.DateField(help_text="The day (UTC) the projection was made.")
    projected = ExactDecimalField(max_digits=48, decimal_places=30)
    actual = ExactDecimalField(max_digits=48, decimal_places=30, null=True, blank=True)

    class Meta:
        ordering = ["month", "-made_on"]
        constraints = [
            models.UniqueConstraint(fields=["month", "made_on"], name="projection_snapshot_once")
        ]

    def __str__(self) -> str:
        return f"{self.month:%Y-%m} as projected on {self.made_on}"

    @property
    def months_ahead(self) -> int:
        return (self.month.year - self.made_on.year) * 12 + self.month.month - self.made_on.month


class FeatureReach(models.Model):
    """How many distinct end users and sessions used a feature in a month or quarter,
    across tenants: distinct counts do not add up from the rollups' days, so a job counts
    them from the events (`console.economics`) and reports read them here. `feature` ''
    is every feature together."""

    class Period(models.TextChoices):
        MONTH = "month", "Month"
        QUARTER = "quarter", "Quarter"

    period = models.CharField(max_length=8, choices=Period.choices)
    period_start = models.DateField()
    feature = models.CharField(max_length=128, blank=True)
    users = models.BigIntegerField(default=0)
    sessions = models.BigIntegerField(default=0)
    session_cost = ExactDecimalField(
        max_digits=48, decimal_places=30, default=0,
        help_text="The cost of the feature's calls made in a session.",
    )  # fmt: skip
    counted_at = models.DateTimeField()

    class Meta:
        ordering = ["period", "period_start", "feature"]
        constraints = [
            models.UniqueConstraint(
                fields=["period", "period_start", "feature"], name="feature_reach_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.feature or 'all features'} {self.period} {self.period_start}: {self.users}"
