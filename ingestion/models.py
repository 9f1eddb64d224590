from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q

from finops.fields import ExactDecimalField, TransactionId
from finops.models import ApiKey, ModelPrice, ServiceTier, Tenant


class Feature(models.Model):
    """A product capability (`document_summarization`), created on first sight."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        DEPRECATED = "deprecated", "Deprecated"
        THROTTLED = "throttled", "Throttled"
        SUNSET = "sunset", "Sunset"

    class TaskType(models.TextChoices):
        CLASSIFICATION = "classification", "Classification"
        EXTRACTION = "extraction", "Extraction"
        SUMMARIZATION = "summarization", "Summarization"
        GENERATION = "generation", "Generation"
        CHAT = "chat", "Chat"
        RETRIEVAL = "retrieval", "Retrieval"
        OTHER = "other", "Other"

    class Workload(models.TextChoices):
        UNSPECIFIED = "", "Unspecified"
        LATENCY_SENSITIVE = "latency_sensitive", "Latency-sensitive (a user waits)"
        BATCHABLE = "batchable", "Batchable (can wait hours: batch APIs, off-peak)"
        STEADY = "steady", "Steady (constant volume: provisioned throughput)"

    key = models.CharField(max_length=128, unique=True)
    name = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    workload = models.CharField(
        max_length=24,
        choices=Workload.choices,
        blank=True,
        help_text="How its calls can be served: which optimization levers apply to it.",
    )
    allowed_regions = models.JSONField(
        default=list,
        blank=True,
        help_text="Regions its data may be processed in (compliance); empty: any region "
        "it already uses.",
    )
    task_type = models.CharField(max_length=32, choices=TaskType.choices, blank=True)
    default_model = models.CharField(max_length=200, blank=True)
    fallback_model = models.CharField(
        max_length=200, blank=True, help_text="Cheaper model used when a downgrade is decided."
    )
    kill_switch_enabled = models.BooleanField(
        default=False,
        help_text="Move to the fallback model automatically when the cost rate spikes.",
    )
    sunset_on = models.DateField(
        null=True,
        blank=True,
        help_text="When the feature is to be sunset (set by its retirement review); the "
        "guard names it to the callers of a deprecated feature.",
    )
    auto_created = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key

    def clean(self) -> None:
        problem = regions_problem(self.allowed_regions)
        if problem:
            raise ValidationError({"allowed_regions": problem})


def regions_problem(value: object) -> str:
    """What is wrong with a list of allowed regions ('' when nothing)."""
    if not isinstance(value, list) or not all(
        isinstance(r, str) and 0 < len(r) <= 64 and "/" not in r for r in value
    ):
        return "A list of region names (1 to 64 characters each, no '/'), as events name them."
    return ""


class PromptTemplate(models.Model):
    """The prompt a call used, as its client names it (`summarize-v3`)."""

    key = models.CharField(max_length=128, unique=True)
    feature = models.ForeignKey(
        Feature, null=True, blank=True, on_delete=models.SET_NULL, related_name="prompts"
    )
    version = models.CharField(max_length=64, blank=True)
    auto_created = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key


class UsageEvent(models.Model):
    """One model call, as posted, with the exact cost and the price row that priced it.

    Rows are written by the bulk path in `ingestion.services.writer`; the columns here
    are the single source of that statement's column list.
    """

    # Foreign keys carry no index of their own: every index slows the ingest path, and
    # (tenant, event_id) / (tenant, timestamp) already lead with the tenant.
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False)
    event_id = models.CharField(max_length=128)
    timestamp = models.DateTimeField()
    received_at = models.DateTimeField()
    feature = models.ForeignKey(
        Feature, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    prompt_template = models.ForeignKey(
        PromptTemplate,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    model = models.CharField(max_length=200)
    provider = models.CharField(max_length=100, blank=True)
    region = models.CharField(max_length=64, blank=True)
    input_tokens = models.BigIntegerField()
    output_tokens = models.BigIntegerField()
    cached_input_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    cache_write_1h_tokens = models.BigIntegerField(
        default=0, help_text="The part of cache_write_tokens written with a 1-hour TTL."
    )
    reasoning_tokens = models.BigIntegerField(default=0)
    grounding_tokens = models.BigIntegerField(default=0)
    wasted_tokens = models.BigIntegerField(default=0)
    user = models.CharField(max_length=200, blank=True)
    # The key that posted it (what API-key budgets count). No constraint: revoking or
    # deleting a key must not touch the ledger.
    api_key = models.ForeignKey(
        ApiKey,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
        db_index=False,
    )
    session = models.CharField(max_length=200, blank=True)
    routing_tier = models.CharField(max_length=64, blank=True)
    latency_ms = models.IntegerField(null=True, blank=True)
    cache_hit = models.BooleanField(null=True, blank=True)
    escalated = models.BooleanField(null=True, blank=True)
    batch = models.BooleanField(default=False, help_text="service_tier is batch.")
    service_tier = models.CharField(
        max_length=16, choices=ServiceTier.choices, default=ServiceTier.STANDARD
    )
    queries = models.BigIntegerField(default=0, help_text="Rerank or search units.")
    chunks_retrieved = models.IntegerField(null=True, blank=True)
    chunks_used = models.IntegerField(null=True, blank=True)
    reranker_changed_order = models.BooleanField(null=True, blank=True)
    outcome = models.CharField(max_length=16, blank=True)
    prompt_hash = models.CharField(max_length=128, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    client_cost_usd = ExactDecimalField(max_digits=30, decimal_places=18, null=True, blank=True)
    cost = ExactDecimalField(
        # Prices carry up to 18 decimals per 1M tokens and batch discounts 3 more per
        # percent: 30 places hold every product exactly.
        max_digits=48,
        decimal_places=30,
        null=True,
        blank=True,
        help_text="Exact; never rounded.",
    )
    currency = models.CharField(max_length=3, blank=True)
    price = models.ForeignKey(
        ModelPrice,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    priced_at = models.DateTimeField(null=True, blank=True)
    # Which of the price row's rates applied (set when priced): statements bill each
    # class of rate on its own line.
    above_tokens = models.BigIntegerField(
        default=0, help_text="The long-context threshold whose rates priced it (0: base)."
    )
    off_peak = models.BooleanField(default=False, help_text="Priced at off-peak rates.")
    tenant_tier = models.CharField(max_length=16)
    content_hash = models.CharField(max_length=64)
    # Set by the database: the inserting transaction (see TransactionId). Rollups read
    # events by it; a BRIN index (PostgreSQL only, in the migration) keeps that cheap.
    xact = models.BigIntegerField(db_default=TransactionId(), editable=False)

    class Meta:
        ordering = ["-timestamp", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "event_id"], name="usage_event_unique_id"),
            models.CheckConstraint(
                condition=Q(output_tokens__gte=F("reasoning_tokens"))
                & Q(input_tokens__gte=F("cached_input_tokens") + F("cache_write_tokens"))
                & Q(cached_input_tokens__gte=0)
                & Q(cache_write_tokens__gte=F("cache_write_1h_tokens"))
                & Q(cache_write_1h_tokens__gte=0)
                & Q(queries__gte=0)
                & Q(reasoning_tokens__gte=0)
                & Q(grounding_tokens__gte=0)
                & Q(wasted_tokens__gte=0),
                name="usage_event_token_vector_consistent",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "timestamp"], name="usage_event_tenant_time"),
            models.Index(fields=["timestamp"], name="usage_event_time"),
            # What the guard's counters of one end user or one key are seeded from.
            models.Index(
                fields=["tenant", "user", "timestamp"],
                condition=~Q(user=""),
                name="usage_event_user_time",
            ),
            models.Index(
                fields=["api_key", "timestamp"],
                condition=Q(api_key__isnull=False),
                name="usage_event_key_time",
            ),
            models.Index(
                fields=["model"], condition=Q(price__isnull=True), name="usage_event_unpriced"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id}:{self.event_id}"

    @property
    def priced(self) -> bool:
        return self.price_id is not None


class CostChange(models.Model):
    """An append-only change of an event's cost: priced late, or re-priced.

    Events are never re-read by the rollups; a change of cost reaches them as one of
    these rows, written in the same transaction as the event's update.
    """

    class Reason(models.TextChoices):
        PRICED = "priced", "Priced once a price existed"
        REPRICED = "repriced", "Re-priced after a price correction"

    event = models.ForeignKey(UsageEvent, on_delete=models.PROTECT, related_name="+")
    cost_delta = ExactDecimalField(max_digits=48, decimal_places=30)
    priced_delta = models.SmallIntegerField(help_text="+1 when the event became priced.")
    reason = models.CharField(max_length=16, choices=Reason.choices)
    created_at = models.DateTimeField()
    xact = models.BigIntegerField(db_default=TransactionId(), editable=False)

    class Meta:
        indexes = [models.Index(fields=["xact"], name="cost_change_xact")]

    def __str__(self) -> str:
        return f"{self.event_id}: {self.cost_delta:+}"
