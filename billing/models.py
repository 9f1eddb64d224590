from __future__ import annotations

from django.db import models

from finops.fields import ExactDecimalField
from finops.models import Tenant

TOKEN_KINDS = (
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "grounding_tokens",
    "wasted_tokens",
)


class UsageRollup(models.Model):
    """Usage folded by hour or day and by tenant, feature, model and prompt template.

    Written only by `billing.rollups`; `feature` and `prompt_template` are keys ('' for
    none). `cost` is exact: the sum of the events' exact costs and later cost changes.
    """

    class Grain(models.TextChoices):
        HOUR = "hour", "Hour"
        DAY = "day", "Day"

    grain = models.CharField(max_length=4, choices=Grain.choices)
    period_start = models.DateTimeField()
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+", db_index=False)
    feature = models.CharField(max_length=128, blank=True)
    model = models.CharField(max_length=200)
    prompt_template = models.CharField(max_length=128, blank=True)
    calls = models.BigIntegerField(default=0)
    priced_calls = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    cached_input_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    reasoning_tokens = models.BigIntegerField(default=0)
    grounding_tokens = models.BigIntegerField(default=0)
    wasted_tokens = models.BigIntegerField(default=0)
    cost = ExactDecimalField(max_digits=48, decimal_places=30, default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["grain", "tenant", "period_start", "feature", "model", "prompt_template"],
                name="usage_rollup_unique_group",
            )
        ]
        indexes = [models.Index(fields=["grain", "period_start"], name="usage_rollup_period")]

    def __str__(self) -> str:
        return f"{self.grain} {self.period_start:%Y-%m-%d %H:00} {self.tenant_id} {self.feature}"


class RollupWatermark(models.Model):
    """How far the rollups have read the ledger, moved in the same transaction as they.

    On PostgreSQL both positions are transaction ids (everything below has been folded);
    on SQLite they are the last folded event id and cost change id.
    """

    name = models.CharField(max_length=32, unique=True)
    events_position = models.BigIntegerField(default=0)
    changes_position = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name}: {self.events_position}/{self.changes_position}"
